//! `explain`: the answer a client would get and why. It runs the real answer path on a real
//! query packet and adds what the steering core saw: location, ranking with distances, server
//! states, tiers and ECS scope, and the bias, split and shedding decisions. The CLI prints
//! it; `/v1/explain` returns it as JSON.

mod certs;
mod traffic;

pub(crate) use certs::add_certificates;
use certs::render_rank;

use std::fmt::Write as _;
use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use serde::Serialize;

use crate::dns::answer::respond;
use crate::dns::snapshot::Snapshot;
use crate::dns::summary::Proto;
use crate::geo::{canonical, distance_km};
use crate::routing::SteerKind;
use crate::steering::{self, Asked};

#[derive(Debug, Serialize)]
pub(crate) struct Explanation {
    pub client: String,
    pub ecs: Option<String>,
    /// The address steering located (the ECS address when given).
    pub located: String,
    pub location: Option<LocationOut>,
    pub name: String,
    pub rtype: String,
    pub zone: Option<String>,
    pub service: Option<ServiceOut>,
    pub rcode: String,
    pub authoritative: bool,
    pub truncated: bool,
    pub ecs_scope: Option<u8>,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    /// In a signed zone, whether the answer (asked again with DO=1) is signed.
    pub dnssec: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct LocationOut {
    /// The database's network holding the address: first and last address.
    pub network: String,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub city: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ServiceOut {
    pub name: String,
    pub target: String,
    pub reason: String,
    pub scope: u8,
    pub fail_open: bool,
    pub nodata: bool,
    pub ranking: Vec<RankOut>,
    /// Regions answered, nearest healthy first.
    pub tiers: Vec<String>,
    /// TTL of the steered records; shorter (the trouble TTL) while a server of the tiers is
    /// suspect, recently flipped or full.
    pub ttl: u32,
    pub trouble: bool,
    /// The answer is SERVFAIL: the GeoIP map is not compiled yet and `geoip.warmup.answer`
    /// is `servfail`.
    pub servfail: bool,
    /// The split of the client's region, where its prefix falls.
    pub split: Option<traffic::SplitOut>,
    /// The prefix the shedding hash was taken of, while a server sheds.
    pub shed_prefix: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct RankOut {
    pub region: String,
    pub distance_km: Option<f64>,
    /// Kilometres the service's `bias:` takes off this region's distance (negative: adds).
    pub bias_km: Option<f64>,
    pub healthy: bool,
    pub servers: Vec<ServerOut>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ServerOut {
    pub name: String,
    pub state: steering::Status,
    /// Up, but its latest probes failed: being confirmed at the suspect cadence.
    pub suspect: bool,
    pub backup: bool,
    /// The operator state file's entry in effect for this server (`drain`, `down`, `up`).
    pub file_state: Option<&'static str>,
    /// Percent of clients the server leaves out (`capacity.shed`), while it sheds.
    pub shed_percent: Option<f64>,
    /// It leaves this client out.
    pub shed_client: bool,
    /// Whole days left on its TLS certificate (negative once expired), where a TLS check has
    /// read one: `/v1/explain` only, from the running health hub.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_days_left: Option<i64>,
    /// The transports its health per transport leaves it out on (its NAPTR and SRV records
    /// of those transports), while its state serves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_on: Vec<&'static str>,
}

/// Explains the answer to `name`/`rtype` for `client` (and an optional ECS subnet).
pub(crate) fn explain(
    snap: &Snapshot,
    client: IpAddr,
    ecs: Option<IpNet>,
    name: &str,
    rtype: RecordType,
) -> Result<Explanation, String> {
    let mut qname = Name::from_ascii(name).map_err(|e| format!("invalid name `{name}`: {e}"))?;
    qname.set_fqdn(true);
    let packet = query(&qname, rtype, ecs, false)?;
    let mut out = Vec::new();
    respond(snap, client, Proto::Udp, &packet, &mut out).ok_or("the query would be dropped")?;
    let reply = Message::from_vec(&out).map_err(|e| format!("cannot decode reply: {e}"))?;

    let located = ecs.map_or(canonical(client), |n| n.network());
    let location = location_out(snap, located);
    let lower = crate::config::service_names::wire_name(&qname.to_lowercase());
    let found = snap.routing.find_zone(&lower);
    let zone = found.map(|(z, _)| z.origin.to_string());
    let dnssec = match found.and_then(|(z, _)| z.key.as_ref()) {
        Some(k) => Some(signed(snap, client, &qname, rtype, ecs, k)?),
        None => None,
    };
    let service = found
        .and_then(|(z, _)| Some(z.nodes.get(&lower)?.steer?.global(z)))
        .map(|sref| service_out(snap, sref, located, location.as_ref()));
    let ecs_scope = reply.edns.as_ref().and_then(|e| {
        match e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(s)) => Some(s.scope_prefix()),
            _ => None,
        }
    });
    let fmt = |rs: &[hickory_proto::rr::Record]| {
        rs.iter()
            .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
            .collect()
    };
    Ok(Explanation {
        client: client.to_string(),
        ecs: ecs.map(|n| n.to_string()),
        located: located.to_string(),
        location,
        name: qname.to_string(),
        rtype: rtype.to_string(),
        zone,
        service,
        rcode: reply.metadata.response_code.to_string(),
        authoritative: reply.metadata.authoritative,
        truncated: reply.metadata.truncation,
        ecs_scope,
        answer: fmt(&reply.answers),
        authority: fmt(&reply.authorities),
        additional: fmt(&reply.additionals),
        dnssec,
    })
}

/// Whether the answer is signed: the record sets of the reply to the same query with DO=1
/// and the RRSIGs beside them.
fn signed(
    snap: &Snapshot,
    client: IpAddr,
    qname: &Name,
    rtype: RecordType,
    ecs: Option<IpNet>,
    key: &crate::dnssec::ZoneKey,
) -> Result<String, String> {
    let packet = query(qname, rtype, ecs, true)?;
    let mut out = Vec::new();
    let mut pending = None;
    crate::dns::answer::respond_pending(snap, client, Proto::Udp, &packet, &mut out, &mut pending)
        .ok_or("the query would be dropped")?;
    let keyed = format!(
        "algorithm {}, key tag {}",
        key.algorithm().number(),
        key.key_tag()
    );
    if pending.is_some() {
        return Ok(format!(
            "signed ({keyed}): the name does not exist; its NXNAME proof (RFC 9824) is signed by the signer thread when first asked, then kept"
        ));
    }
    let m = Message::from_vec(&out).map_err(|e| format!("cannot decode reply: {e}"))?;
    let (mut sets, mut sigs) = (0, 0);
    for rs in [&m.answers, &m.authorities] {
        let mut last: Option<(&Name, RecordType)> = None;
        for r in rs {
            if r.record_type() == RecordType::RRSIG {
                sigs += 1;
            } else if last != Some((&r.name, r.record_type())) {
                sets += 1;
            }
            last = Some((&r.name, r.record_type()));
        }
    }
    if m.metadata.response_code == hickory_proto::op::ResponseCode::ServFail {
        return Ok(format!(
            "not signed yet ({keyed}): a set of this answer has no RRSIG in the signature \
             cache yet, so DO=1 gets SERVFAIL until the signer has made it"
        ));
    }
    Ok(match (sets, sigs) {
        (0, _) => format!("zone signed ({keyed}); no records to sign"),
        (n, s) if s >= n => format!("signed ({keyed}): {s} RRSIG(s) with DO=1"),
        (n, s) => format!("not signed: {s} RRSIG(s) for {n} record set(s) with DO=1"),
    })
}

/// What the steering core saw for the steered name `sref`, for a client at `located`.
fn service_out(
    snap: &Snapshot,
    sref: crate::routing::SteerRef,
    located: IpAddr,
    loc: Option<&LocationOut>,
) -> ServiceOut {
    let st = &snap.steering;
    let si = sref.service as usize;
    let svc = &st.services[si];
    let asked = match sref.kind {
        SteerKind::Service | SteerKind::Srv(_) => Asked::Service,
        SteerKind::Region(p) | SteerKind::RegionSrv(p, _) => Asked::Region(p),
    };
    let (ranking, _) = match asked {
        Asked::Service => st.ranking_for(si, located),
        Asked::Region(p) => (&svc.pinned[p as usize], 0),
    };
    let plan = steering::plan(st, &snap.health, si, asked, located);
    let ttl = steering::answer_ttl(st, &snap.health, svc, &plan);
    let coords = loc.and_then(|l| Some((l.lat?, l.lon?)));
    let region_name = |pos: u16| st.regions[svc.regions[pos as usize]].name.clone();
    ServiceOut {
        name: svc.display.to_string(),
        target: match asked {
            Asked::Service => "ranked for the client".into(),
            Asked::Region(p) => format!("pinned to {}", region_name(p)),
        },
        reason: plan.reason.as_str().into(),
        scope: plan.scope,
        fail_open: plan.fail_open,
        nodata: plan.empty,
        ranking: ranking
            .order
            .iter()
            .map(|&pos| {
                let bias = svc.bias.get(pos as usize).copied().filter(|b| *b != 0.0);
                rank_out(snap, svc.regions[pos as usize], coords, bias, &plan)
            })
            .collect(),
        tiers: plan.tiers().iter().map(|&p| region_name(p)).collect(),
        ttl,
        trouble: ttl != svc.ttl && plan.reason != steering::Reason::Warmup,
        servfail: plan.reason == steering::Reason::Warmup && snap.warmup_servfail,
        split: match asked {
            Asked::Service => {
                traffic::split_out(snap, svc, ranking.order.first().copied(), &plan, located)
            }
            Asked::Region(_) => None,
        },
        shed_prefix: plan.shed_key.map(|_| traffic::prefix_text(located)),
    }
}

/// One region of the ranking (`region` is its global index), with its distance from the
/// client's coordinates when known, and its bias.
fn rank_out(
    snap: &Snapshot,
    region: usize,
    coords: Option<(f64, f64)>,
    bias_km: Option<f64>,
    plan: &steering::Plan,
) -> RankOut {
    let st = &snap.steering;
    let r = &st.regions[region];
    RankOut {
        region: r.name.clone(),
        distance_km: coords.map(|c| (distance_km(c, r.location) * 10.0).round() / 10.0),
        bias_km,
        healthy: st.region_healthy(region, &snap.health),
        servers: r
            .servers
            .iter()
            .map(|s| ServerOut {
                name: s.name.clone(),
                state: snap.health.status(s.slot),
                suspect: snap.health.suspect(s.slot),
                backup: s.backup,
                file_state: snap
                    .config
                    .operator
                    .get(&(r.name.clone(), s.name.clone()))
                    .filter(|o| o.active(std::time::SystemTime::now()))
                    .map(|o| o.state.as_str()),
                shed_percent: traffic::shed_percent(snap, s.slot),
                shed_client: plan.shed_key.is_some_and(|k| {
                    snap.health.serves_client(s.slot, None) && snap.health.sheds(s.slot, k)
                }),
                tls_days_left: None,
                not_on: s
                    .transports
                    .iter()
                    .filter(|&&t| snap.health.out_on(s.slot, t))
                    .map(|t| t.as_str())
                    .collect(),
            })
            .collect(),
    }
}

/// The query packet a resolver would send: EDNS with a 1232-byte payload and the ECS
/// option when a subnet is given.
fn query(
    qname: &Name,
    rtype: RecordType,
    ecs: Option<IpNet>,
    dnssec_ok: bool,
) -> Result<Vec<u8>, String> {
    let mut m = Message::new(1, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(qname.clone(), rtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(dnssec_ok);
    if let Some(net) = ecs {
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            net.network(),
            net.prefix_len(),
            0,
        )));
    }
    m.set_edns(e);
    m.to_vec().map_err(|e| format!("cannot encode query: {e}"))
}

/// Where the GeoIP data places `located`: its range and location; `None` without GeoIP data
/// or when the address is not in it.
fn location_out(snap: &Snapshot, located: IpAddr) -> Option<LocationOut> {
    let g = snap.steering.geo.as_ref()?;
    let (first, last, id) = g.table.lookup_range(located)?;
    let l = g.table.locations.get(id as usize)?;
    let code = |c: Option<[u8; 2]>| c.map(|c| String::from_utf8_lossy(&c).into_owned());
    Some(LocationOut {
        network: format!("{first} - {last}"),
        country: code(l.country),
        continent: code(l.continent),
        city: l.city.as_ref().map(std::string::ToString::to_string),
        lat: l.coords.map(|c| c.0),
        lon: l.coords.map(|c| c.1),
    })
}

/// The explanation as text for people.
pub(crate) fn render(e: &Explanation) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "query     {} {}", e.name, e.rtype);
    let _ = write!(s, "client    {}", e.client);
    if let Some(ecs) = &e.ecs {
        let _ = write!(s, " (ecs {ecs})");
    }
    let _ = writeln!(s);
    render_location(&mut s, e);
    let _ = writeln!(
        s,
        "zone      {}",
        e.zone.as_deref().unwrap_or("none (REFUSED)")
    );
    if let Some(svc) = &e.service {
        render_service(&mut s, svc);
    }
    let _ = writeln!(
        s,
        "rcode     {}{}{}",
        e.rcode,
        if e.authoritative { " aa" } else { "" },
        if e.truncated { " tc" } else { "" }
    );
    if let Some(scope) = e.ecs_scope {
        let _ = writeln!(s, "ecs scope {scope}");
    }
    if let Some(d) = &e.dnssec {
        let _ = writeln!(s, "dnssec    {d}");
    }
    for (title, rs) in [
        ("answer", &e.answer),
        ("authority", &e.authority),
        ("additional", &e.additional),
    ] {
        if !rs.is_empty() {
            let _ = writeln!(s, "{title}");
            for r in rs {
                let _ = writeln!(s, "  {r}");
            }
        }
    }
    s
}

/// The `network` and `location` lines: where the GeoIP data places the located address.
fn render_location(s: &mut String, e: &Explanation) {
    let Some(l) = &e.location else {
        let _ = writeln!(s, "location  unknown ({} not in the GeoIP data)", e.located);
        return;
    };
    let _ = writeln!(s, "network   {}", l.network);
    let _ = writeln!(
        s,
        "location  {} {} {} {}",
        l.country.as_deref().unwrap_or("-"),
        l.continent.as_deref().unwrap_or("-"),
        l.city.as_deref().unwrap_or("-"),
        match (l.lat, l.lon) {
            (Some(a), Some(b)) => format!("({a:.2}, {b:.2})"),
            _ => "(no coordinates)".into(),
        }
    );
}

/// The steered service: why it answered as it did, the ranking, the tiers and a trouble TTL.
fn render_service(s: &mut String, svc: &ServiceOut) {
    let _ = writeln!(s, "service   {} ({})", svc.name, svc.target);
    let _ = writeln!(
        s,
        "reason    {}{}",
        svc.reason,
        if svc.servfail {
            ", GeoIP database not compiled yet: SERVFAIL (geoip.warmup.answer: servfail)".into()
        } else if svc.reason == "warmup" {
            format!(
                ", GeoIP database not compiled yet: the fallback order, TTL at most {}",
                svc.ttl
            )
        } else if svc.fail_open {
            ", every region down: answering the nearest anyway".into()
        } else if svc.nodata {
            ", every region down: no records (all_down: nodata)".into()
        } else {
            String::new()
        }
    );
    if let Some(sp) = &svc.split {
        traffic::render_split(s, sp);
    }
    if let Some(p) = &svc.shed_prefix {
        let _ = writeln!(s, "shedding  hashed on {p}");
    }
    let _ = writeln!(s, "ranking");
    for (i, r) in svc.ranking.iter().enumerate() {
        render_rank(s, i, r);
    }
    let tiers: Vec<String> = svc
        .tiers
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{t} (priority {})", 10 * (i + 1)))
        .collect();
    let _ = writeln!(
        s,
        "tiers     {}",
        if tiers.is_empty() {
            "none".into()
        } else {
            tiers.join(", ")
        }
    );
    if svc.trouble {
        let _ = writeln!(
            s,
            "ttl       {} (trouble: a server of the tiers is suspect, recently flipped or full)",
            svc.ttl
        );
    }
}
