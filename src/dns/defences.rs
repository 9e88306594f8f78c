//! The defences of an internet-facing authoritative around the answer path: DNS Cookies,
//! response rate limiting, NSID and Extended DNS Errors. [`Defences::before`] runs once the
//! query is parsed (checks its cookie), [`Defences::after`] once the reply is written (rate
//! limits it, then adds the reply's EDNS options). Their counters belong to the instance and
//! are striped by client address, so UDP workers rarely share a cache line.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::answer::Proto;
use super::cookie::{Proof, Secrets, unix_now};
use super::edns::{self, Extra};
use super::rrl::{Class, Limits, Rrl, Verdict};
use super::wire::{self, Query};
use crate::config::DefenceSettings;

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
pub struct Pre<'d> {
    extra: Extra<'d>,
    /// Exempt from rate limiting: TCP, or a valid server cookie.
    exempt: bool,
}

impl Pre<'_> {
    /// Bytes to keep free in the reply for the options added later.
    pub fn reserve(&self) -> usize {
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
    pub fn before(&self, q: &Query, client: IpAddr, proto: Proto) -> Pre<'_> {
        let mut pre = Pre {
            extra: Extra::default(),
            exempt: proto == Proto::Tcp,
        };
        let Some(e) = q.edns else { return pre };
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

    /// Rate-limits the written reply (UDP without a valid cookie) and adds its options.
    /// `opt_at` is where the reply's OPT record starts. Returns what became of the reply.
    #[allow(clippy::too_many_arguments)]
    pub fn after(
        &self,
        pre: &Pre,
        q: &Query,
        client: IpAddr,
        zone: Option<u32>,
        payload: u16,
        out: &mut Vec<u8>,
        opt_at: usize,
    ) -> Verdict {
        if let Some(rrl) = &self.rrl
            && !pre.exempt
        {
            let d = rrl.check(client, classify(out, q, zone), pre.extra.cookie.is_some());
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
                    edns::short_reply(out, q, payload, bad.as_ref());
                    return Verdict::Slip;
                }
            }
        }
        let mut extra = pre.extra;
        match out.get(3).map(|f| f & 0xF) {
            Some(wire::RCODE_REFUSED) => extra.ede = edns::refused_reason(q, zone),
            // The answer path's only SERVFAIL: a steered name before the GeoIP map is in.
            Some(wire::RCODE_SERVFAIL) => extra.ede = Some(edns::EDE_NOT_READY),
            _ => {}
        }
        edns::append(out, opt_at, &extra);
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

/// The rate-limiting class of a written reply, read from its header.
fn classify<'q>(out: &[u8], q: &'q Query, zone: Option<u32>) -> Class<'q> {
    let z = zone.unwrap_or(u32::MAX);
    let (Some(&f), Some(an)) = (out.get(3), out.get(6..8)) else {
        return Class::Error;
    };
    let aa = out[2] & 0x04 != 0;
    let tc = out[2] & 0x02 != 0;
    let answers = u16::from_be_bytes([an[0], an[1]]);
    match f & 0xF {
        wire::RCODE_NOERROR if answers > 0 || tc => Class::Answer(q.name, q.qtype),
        wire::RCODE_NOERROR if aa => Class::NoData(z),
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
const COUNTERS: usize = 7;
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
    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "# HELP sipsteer_dns_cookies_total queries with a DNS cookie, by what the cookie proved\n\
         # TYPE sipsteer_dns_cookies_total counter"
        );
        for (i, name) in [
            (COOKIE_CLIENT_ONLY, "client_only"),
            (COOKIE_VALID, "valid"),
            (COOKIE_INVALID, "invalid"),
        ] {
            let _ = writeln!(
                out,
                "sipsteer_dns_cookies_total{{result=\"{name}\"}} {}",
                self.counts.total(i)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sipsteer_rrl_responses_total UDP responses held back by rate limiting: dropped, \
         slipped (empty and truncated) or replaced by BADCOOKIE\n\
         # TYPE sipsteer_rrl_responses_total counter"
        );
        for (i, name) in [
            (RRL_DROPPED, "dropped"),
            (RRL_SLIPPED, "slipped"),
            (RRL_BADCOOKIE, "badcookie"),
        ] {
            let _ = writeln!(
                out,
                "sipsteer_rrl_responses_total{{action=\"{name}\"}} {}",
                self.counts.total(i)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sipsteer_rrl_prefix_limited_total UDP responses held back (dropped, slipped \
         or replaced by BADCOOKIE) because their client prefix exceeded dns.rrl.all_per_second\n\
         # TYPE sipsteer_rrl_prefix_limited_total counter\n\
         sipsteer_rrl_prefix_limited_total {}",
            self.counts.total(RRL_BY_PREFIX)
        );
    }
}
