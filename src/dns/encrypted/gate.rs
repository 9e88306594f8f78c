//! A connection cap for DNS over TLS. hickory-server's `Server` accepts every connection and
//! offers no hook to refuse one, so the cap is applied where sipsteer is asked something per
//! connection: the certificate lookup of each handshake. It counts the open TCP connections
//! on the DNS over TLS ports as the kernel sees them (`/proc/net/tcp`, `/proc/net/tcp6`:
//! established or half-closed, server side), and over the cap the handshake is refused, so the
//! connection closes at once. Connections that never send a ClientHello are closed by the
//! handshake timeout. The count is refreshed at most every [`REFRESH`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How stale the connection count may be.
pub(crate) const REFRESH: Duration = Duration::from_millis(20);

/// Bounds the connections on some local TCP ports.
#[derive(Debug)]
pub(crate) struct Gate {
    ports: Vec<u16>,
    max: usize,
    counted: Mutex<Option<(Instant, usize)>>,
    refused: metrics::Counter,
}

impl Gate {
    pub(crate) fn new(
        ports: Vec<u16>,
        max: usize,
        telemetry: &crate::telemetry::Telemetry,
    ) -> Gate {
        Gate {
            ports,
            max,
            counted: Mutex::new(None),
            refused: telemetry.counter("sipsteer_dns_tls_refused_total", &[]),
        }
    }

    /// Whether one more handshake may complete. The connection asking is already counted.
    pub(crate) fn admit(&self) -> bool {
        let now = Instant::now();
        let Ok(mut counted) = self.counted.lock() else {
            return true;
        };
        let n = match *counted {
            Some((at, n)) if now.duration_since(at) < REFRESH => n,
            _ => {
                let n = self.count();
                *counted = Some((now, n));
                n
            }
        };
        if n > self.max {
            self.refused.increment(1);
            return false;
        }
        true
    }

    fn count(&self) -> usize {
        ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|table| count_in(&table, &self.ports))
            .sum()
    }
}

/// Connections in a `/proc/net/tcp` table whose local port is one of `ports` and whose state
/// is established (01) or close-wait (08).
pub(crate) fn count_in(table: &str, ports: &[u16]) -> usize {
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let mut f = line.split_whitespace();
            let local = f.nth(1).unwrap_or("");
            let state = f.nth(1).unwrap_or("");
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            matches!(state, "01" | "08") && port.is_some_and(|p| ports.contains(&p))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_server_side_connections_only() {
        let table = "  sl  local_address rem_address   st tx_queue ...\n\
   0: 0100007F:0355 00000000:0000 0A 00000000:00000000\n\
   1: 0100007F:0355 0100007F:D431 01 00000000:00000000\n\
   2: 0100007F:D431 0100007F:0355 01 00000000:00000000\n\
   3: 0100007F:0355 0100007F:D432 08 00000000:00000000\n\
   4: 0100007F:0035 0100007F:D433 01 00000000:00000000\n\
   5: 0100007F:0355 0100007F:D434 06 00000000:00000000\n";
        assert_eq!(count_in(table, &[853]), 2);
        assert_eq!(count_in(table, &[853, 53]), 3);
        assert_eq!(count_in(table, &[54]), 0);
        let v6 = "  sl  local_address                         remote_address st\n\
   0: 00000000000000000000000001000000:0355 00000000000000000000000001000000:D431 01 0\n";
        assert_eq!(count_in(v6, &[853]), 1);
    }
}
