//! Checks per transport: a server with `check: per-transport` or a `checks:` map gets one
//! check for each transport it lists, the transport's default unless `checks:` names
//! another, so each transport has a health state of its own.

use serde_saphyr::Spanned;

use super::error::Sink;
use super::raw;
use super::{Check, Transport, TransportCheck};

/// The check a transport gets when `checks:` does not name one: SIP OPTIONS over the
/// transport itself (over TLS and secure WebSocket only with a `tls_name` to verify, else a
/// TCP connect to the transport's port).
pub(super) fn default_check(t: Transport, has_tls_name: bool) -> Check {
    match t {
        Transport::Udp => Check::SipUdp,
        Transport::Tcp => Check::SipTcp,
        Transport::Tls if has_tls_name => Check::SipTls,
        Transport::Ws => Check::SipWs,
        Transport::Wss if has_tls_name => Check::SipWss,
        Transport::Tls | Transport::Wss => Check::Tcp,
    }
}

/// A check name for one transport: `None` when that check cannot check it, `Some(None)`
/// for `none`.
fn for_transport(t: Transport, name: &str) -> Option<Option<Check>> {
    Some(Some(match (t, name) {
        (_, "none") => return Some(None),
        (Transport::Udp, "sip-options" | "sip-options-udp") => Check::SipUdp,
        (Transport::Tcp, "sip-options" | "sip-options-tcp") => Check::SipTcp,
        (Transport::Tls, "sip-options" | "sip-options-tls") => Check::SipTls,
        (Transport::Ws, "sip-options" | "sip-options-ws") => Check::SipWs,
        (Transport::Wss, "sip-options" | "sip-options-wss") => Check::SipWss,
        (Transport::Udp, _) => return None,
        (_, "tcp" | "tcp-connect") => Check::Tcp,
        _ => return None,
    }))
}

/// The checks a transport may have, for the error message.
fn allowed(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "sip-options, sip-options-udp or none",
        Transport::Tcp => "sip-options, sip-options-tcp, tcp-connect or none",
        Transport::Tls => "sip-options, sip-options-tls, tcp-connect or none",
        Transport::Ws => "sip-options, sip-options-ws, tcp-connect or none",
        Transport::Wss => "sip-options, sip-options-wss, tcp-connect or none",
    }
}

/// One check per transport of the server, in the order of `transports`.
pub(super) fn per_transport(
    s: &raw::Server,
    transports: &[Transport],
    path: &str,
    sink: &mut Sink,
) -> Vec<TransportCheck> {
    let has_tls_name = s.tls_name.is_some();
    let mut out: Vec<TransportCheck> = transports
        .iter()
        .map(|&t| TransportCheck {
            transport: t,
            check: Some(default_check(t, has_tls_name)),
        })
        .collect();
    let Some(map) = &s.checks else {
        return out;
    };
    let cpath = format!("{path}.checks");
    for (key, value) in raw::in_written_order(&map.value) {
        let Some(t) = Transport::ALL.into_iter().find(|t| t.as_str() == key.value) else {
            sink.on(
                key,
                &cpath,
                format!(
                    "unknown transport `{}` (use udp, tcp, tls, ws or wss)",
                    key.value
                ),
            );
            continue;
        };
        let Some(slot) = out.iter_mut().find(|c| c.transport == t) else {
            sink.on(
                key,
                &cpath,
                format!(
                    "the server does not list transport `{}` in its transports",
                    key.value
                ),
            );
            continue;
        };
        match for_transport(t, &value.value) {
            Some(c) => slot.check = c,
            None => sink.on(
                value,
                format!("{cpath}.{}", key.value),
                format!(
                    "check `{}` cannot check transport {} (use {})",
                    value.value,
                    key.value,
                    allowed(t)
                ),
            ),
        }
    }
    out
}

/// Where a server's TLS check is configured, for an error about it: its `checks:` entry for
/// `tls` (or `wss`), else its `check:`, else its address.
pub(super) fn tls_location(s: &raw::Server) -> serde_saphyr::Location {
    let entry = s.checks.as_ref().and_then(|m| {
        m.value
            .iter()
            .find(|(k, _)| k.value == "tls" || k.value == "wss")
            .map(|(_, v): (_, &Spanned<String>)| v.referenced)
    });
    entry
        .or_else(|| s.check.as_ref().map(|c| c.referenced))
        .unwrap_or(s.address.referenced)
}
