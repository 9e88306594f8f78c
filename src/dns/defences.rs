//! The defences of an internet-facing authoritative around the answer path: DNS Cookies,
//! response rate limiting, NSID and Extended DNS Errors. [`Defences::before`] runs once the
//! query is parsed (checks its cookie), [`Defences::after`] once the reply is written (rate
//! limits it by what the answer path decided, then adds the reply's EDNS options). Their
//! counters belong to the instance and are striped by client address, so UDP workers rarely
//! share a cache line.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::cookie::{Proof, Secrets, unix_now};
use super::edns::{self, Extra};
use super::rrl::{Class, Limits, Rrl, Verdict};
use super::summary::Proto;
use super::wire::{self, Query};
use super::writer::{Answer, Finished};
use crate::config::DefenceSettings;

/// One parsed request as the defences see it.
pub(crate) struct Request<'r> {
    pub query: &'r Query<'r>,
    pub client: IpAddr,
    pub proto: Proto,
    /// The largest UDP payload the server offers (the OPT of a reply written here).
    pub payload: u16,
}

/// The defences of one configuration, kept across reloads that do not change them (so the
/// rate-limiting table survives a zone edit).
pub struct Defences {
    settings: DefenceSettings,
    cookies: Option<Secrets>,
    rrl: Option<Rrl>,
    /// Carried over to the defences of every later configuration.
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Defences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Defences")
            .field("cookies", &self.cookies.is_some())
            .field("rrl", &self.rrl.as_ref().map(Rrl::limits))
            .field("nsid", &self.settings.nsid)
            .finish()
    }
}

/// What [`Defences::before`] learnt about a query.
pub(crate) struct Pre<'d> {
    extra: Extra<'d>,
    /// Exempt from rate limiting: TCP, or a valid server cookie.
    exempt: bool,
}

impl Pre<'_> {
    /// Bytes to keep free in the reply for the options added later.
    pub(crate) fn reserve(&self) -> usize {
        self.extra.reserve()
    }
}

impl Defences {
    /// The defences for `settings`, reusing `previous` when they did not change.
    pub fn for_settings(s: &DefenceSettings, previous: Option<&Arc<Defences>>) -> Arc<Defences> {
        if let Some(p) = previous
            && p.settings == *s
        {
            return p.clone();
        }
        // Cookies handed out under a random secret stay valid across a reload.
        let secret = match previous.and_then(|p| p.cookies.as_ref()) {
            Some(Secrets::Rotating(k)) => *k,
            _ => rand::random(),
        };
        let cookies = s.cookies.then(|| match s.secrets.is_empty() {
            true => Secrets::Rotating(secret),
            false => Secrets::Fixed(s.secrets.iter().map(|k| k.0).collect()),
        });
        let rrl = s.rrl.as_ref().map(|r| {
            let limits = Limits {
                rate: r.responses_per_second,
                all_rate: r.all_per_second.unwrap_or(0),
                window_us: r.window.as_micros() as u64,
                slip: r.slip,
                slots: r.table_size,
                v4_prefix: r.ipv4_prefix,
                v6_prefix: r.ipv6_prefix,
            };
            Rrl::new(limits, rand::random())
        });
        Arc::new(Defences {
            settings: s.clone(),
            cookies,
            rrl,
            counts: previous.map_or_else(Arc::default, |p| p.counts.clone()),
        })
    }

    /// Checks the query's cookie and notes the options its reply needs.
    pub(crate) fn before(&self, req: &Request) -> Pre<'_> {
        let client = req.client;
        let mut pre = Pre {
            extra: Extra::default(),
            exempt: req.proto == Proto::Tcp,
        };
        let Some(e) = req.query.edns else { return pre };
        if e.nsid {
            pre.extra.nsid = self.settings.nsid.as_deref();
        }
        if let (Some(secrets), Some(c)) = (&self.cookies, e.cookie) {
            let (check, server) = secrets.check(&c, client, unix_now());
            self.counts.add(
                client,
                match check {
                    Proof::ClientOnly => COOKIE_CLIENT_ONLY,
                    Proof::Valid => COOKIE_VALID,
                    Proof::Invalid => COOKIE_INVALID,
                },
            );
            pre.extra.cookie = Some((c.client, server));
            pre.exempt |= check == Proof::Valid;
        }
        pre
    }

    /// Rate-limits the reply `out` (UDP without a valid cookie) by what the answer path
    /// decided (`a`, and what writing it left in `done`), and adds its options. Returns what
    /// became of the reply.
    pub(crate) fn after(
        &self,
        pre: &Pre,
        req: &Request,
        a: &Answer,
        done: Finished,
        out: &mut Vec<u8>,
    ) -> Verdict {
        let (q, client, zone) = (req.query, req.client, a.zone);
        if let Some(rrl) = &self.rrl
            && !pre.exempt
        {
            let class = classify(a, done.answers, q);
            let d = rrl.check(client, class, pre.extra.cookie.is_some());
            if d.by_prefix {
                self.counts.add(client, RRL_BY_PREFIX);
            }
            match d.verdict {
                Verdict::Send => {}
                Verdict::Drop => {
                    self.counts.add(client, RRL_DROPPED);
                    return Verdict::Drop;
                }
                Verdict::Slip => {
                    let bad = pre.extra.cookie.map(|c| Extra {
                        cookie: Some(c),
                        ..Extra::default()
                    });
                    self.counts.add(
                        client,
                        if bad.is_some() {
                            RRL_BADCOOKIE
                        } else {
                            RRL_SLIPPED
                        },
                    );
                    edns::short_reply(out, q, req.payload, bad.as_ref());
                    return Verdict::Slip;
                }
            }
        }
        let mut extra = pre.extra;
        match a.rcode {
            wire::RCODE_REFUSED => extra.ede = edns::refused_reason(q, zone),
            // The answer path's only SERVFAIL: a steered name before the GeoIP map is in.
            wire::RCODE_SERVFAIL => extra.ede = Some(edns::EDE_NOT_READY),
            _ => {}
        }
        edns::append(out, done.opt_at, &extra);
        Verdict::Send
    }

    /// Rate-limits an error reply to a query that could not be parsed (UDP only; such
    /// replies are no larger than the query, so a slip sends them unchanged) and adds an
    /// extended error to NOTIMP. Returns whether to send it.
    pub fn after_error(
        &self,
        client: IpAddr,
        proto: Proto,
        rcode: u16,
        out: &mut Vec<u8>,
        opt_at: usize,
    ) -> bool {
        if let Some(rrl) = &self.rrl
            && proto == Proto::Udp
        {
            let d = rrl.check(client, Class::Error, false);
            if d.by_prefix {
                self.counts.add(client, RRL_BY_PREFIX);
            }
            match d.verdict {
                Verdict::Send => {}
                Verdict::Slip => self.counts.add(client, RRL_SLIPPED),
                Verdict::Drop => {
                    self.counts.add(client, RRL_DROPPED);
                    return false;
                }
            }
        }
        if rcode == u16::from(wire::RCODE_NOTIMP) {
            let extra = Extra {
                ede: Some(edns::EDE_NOT_SUPPORTED),
                ..Extra::default()
            };
            edns::append(out, opt_at, &extra);
        }
        true
    }
}

/// The rate-limiting class of a reply: what the answer path decided for it (`answers`
/// records in its answer section).
fn classify<'q>(a: &Answer, answers: u16, q: &'q Query) -> Class<'q> {
    let z = a.zone.unwrap_or(u32::MAX);
    match a.rcode {
        // A compact denial (RFC 9824) is an NXDOMAIN in all but its rcode.
        _ if a.nxname => Class::NxDomain(z),
        wire::RCODE_NOERROR if answers > 0 || a.tc => Class::Answer(q.name, q.qtype),
        wire::RCODE_NOERROR if a.aa => Class::NoData(z),
        wire::RCODE_NOERROR => Class::Referral(z),
        wire::RCODE_NXDOMAIN => Class::NxDomain(z),
        _ => Class::Error,
    }
}

const COOKIE_CLIENT_ONLY: usize = 0;
const COOKIE_VALID: usize = 1;
const COOKIE_INVALID: usize = 2;
const RRL_DROPPED: usize = 3;
const RRL_SLIPPED: usize = 4;
const RRL_BADCOOKIE: usize = 5;
const RRL_BY_PREFIX: usize = 6;
/// How many counters the defences keep.
pub(crate) const COUNTERS: usize = 7;

/// The series of each counter: the metric and its label, in counter order.
pub(crate) const SERIES: [(&str, Option<(&str, &str)>); COUNTERS] = [
    (
        "sipsteer_dns_cookies_total",
        Some(("result", "client_only")),
    ),
    ("sipsteer_dns_cookies_total", Some(("result", "valid"))),
    ("sipsteer_dns_cookies_total", Some(("result", "invalid"))),
    ("sipsteer_rrl_responses_total", Some(("action", "dropped"))),
    ("sipsteer_rrl_responses_total", Some(("action", "slipped"))),
    (
        "sipsteer_rrl_responses_total",
        Some(("action", "badcookie")),
    ),
    ("sipsteer_rrl_prefix_limited_total", None),
];
const STRIPES: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Stripe([AtomicU64; COUNTERS]);

/// The defences' counters of one instance.
#[derive(Default)]
struct Counts([Stripe; STRIPES]);

impl Counts {
    fn add(&self, client: IpAddr, i: usize) {
        let spread = match client {
            IpAddr::V4(a) => a.octets()[3] as usize,
            IpAddr::V6(a) => a.octets()[7] as usize,
        };
        self.0[spread % STRIPES].0[i].fetch_add(1, Ordering::Relaxed);
    }

    fn total(&self, i: usize) -> u64 {
        self.0.iter().map(|s| s.0[i].load(Ordering::Relaxed)).sum()
    }
}

impl Defences {
    /// Every counter summed over the stripes, in [`SERIES`] order.
    pub(crate) fn totals(&self) -> [u64; COUNTERS] {
        std::array::from_fn(|i| self.counts.total(i))
    }
}
