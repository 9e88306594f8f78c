//! The descriptor budget, set once at start: the open-file soft limit is raised to the hard
//! limit, and the connection caps of the stream listeners (DNS over TCP, TLS, HTTPS) are
//! lowered, in proportion, until they fit in what the limit leaves after everything else
//! (sockets, the admin API's cap, probes in flight, [`MARGIN`] for files and the runtime). A
//! flood then meets the tables' caps, which shed and evict, before the process runs out of
//! descriptors; [`super::accept`] is the second line when it does anyway.

/// Descriptors kept for what is not counted apart: standard streams, the runtime, signals,
/// the file watcher, config and state files being read or written, the query log, and the
/// load puller's connections.
pub(crate) const MARGIN: usize = 64;

/// The connection caps of the stream listeners; 0 for a transport that is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    pub tcp: usize,
    pub tls: usize,
    pub https: usize,
}

impl Caps {
    fn total(self) -> usize {
        self.tcp.saturating_add(self.tls).saturating_add(self.https)
    }
}

/// Descriptors held besides stream connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fixed {
    /// Listening and UDP sockets, and the prober's own sockets.
    pub sockets: usize,
    /// The admin API's connection cap (0 when it is off).
    pub admin: usize,
    /// Probes in flight at once (each may hold a socket).
    pub probes: usize,
}

impl Fixed {
    fn total(self) -> usize {
        MARGIN
            .saturating_add(self.sockets)
            .saturating_add(self.admin)
            .saturating_add(self.probes)
    }
}

/// Raises the open-file limit and returns the caps that fit in it, logging what was lowered.
pub(crate) fn fit(caps: Caps, fixed: Fixed) -> Caps {
    let Some(limit) = raise_limit() else {
        return caps;
    };
    let fitted = clamp(caps, fixed, limit);
    let needed = fixed.total().saturating_add(caps.total());
    if fitted != caps {
        tracing::warn!(
            limit,
            needed,
            tcp = fitted.tcp,
            tls = fitted.tls,
            https = fitted.https,
            "open file limit is below what the connection caps need: caps lowered to fit (raise LimitNOFILE to keep them)"
        );
    } else if fixed.total() > limit {
        tracing::warn!(
            limit,
            needed,
            "open file limit is below what sockets, admin connections and probes need: raise LimitNOFILE"
        );
    }
    fitted
}

/// The caps, lowered in proportion (each at least 1 when it was on) so that they and `fixed`
/// fit in `limit` descriptors.
pub(crate) fn clamp(caps: Caps, fixed: Fixed, limit: usize) -> Caps {
    let room = limit.saturating_sub(fixed.total());
    let total = caps.total();
    if total <= room {
        return caps;
    }
    let share = |cap: usize| {
        if cap == 0 {
            return 0;
        }
        // total > room >= 0, so this never divides by zero; u128 keeps the product exact.
        let scaled = (cap as u128 * room as u128 / total as u128) as usize;
        scaled.max(1)
    };
    Caps {
        tcp: share(caps.tcp),
        tls: share(caps.tls),
        https: share(caps.https),
    }
}

/// Raises the soft limit on open files to the hard limit; returns the soft limit now in force
/// (`None` when it cannot be read).
fn raise_limit() -> Option<usize> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
            lim = raised;
        }
    }
    Some(usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXED: Fixed = Fixed {
        sockets: 6,
        admin: 128,
        probes: 2,
    };

    #[test]
    fn caps_that_fit_are_kept() {
        let caps = Caps {
            tcp: 1024,
            tls: 1024,
            https: 0,
        };
        assert_eq!(clamp(caps, FIXED, 2048 + 200), caps);
        assert_eq!(clamp(caps, FIXED, 1 << 20), caps);
    }

    #[test]
    fn caps_over_the_limit_are_lowered_in_proportion() {
        let caps = Caps {
            tcp: 1024,
            tls: 512,
            https: 0,
        };
        // 1000 - (64 + 6 + 128 + 2) = 800 for connections.
        let got = clamp(caps, FIXED, 1000);
        assert_eq!(
            got,
            Caps {
                tcp: 533,
                tls: 266,
                https: 0
            }
        );
        assert!(got.total() <= 800);
        // No room at all: each transport that is on keeps one connection.
        assert_eq!(
            clamp(caps, FIXED, 100),
            Caps {
                tcp: 1,
                tls: 1,
                https: 0
            }
        );
    }

    #[test]
    fn the_example_of_the_operations_guide() {
        // One DNS address with two UDP threads, one DoT and one DoH address, admin on.
        let fixed = Fixed {
            sockets: 3 + 1 + 1 + 1 + 2,
            admin: 128,
            probes: 256,
        };
        let caps = Caps {
            tcp: 1024,
            tls: 1024,
            https: 1024,
        };
        assert_eq!(fixed.total() + caps.total(), 3528);
        let each = 189;
        assert_eq!(
            clamp(caps, fixed, 1024),
            Caps {
                tcp: each,
                tls: each,
                https: each
            }
        );
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let now = raise_limit().expect("limit");
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) },
            0
        );
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        assert_eq!(now as u64, lim.rlim_cur);
    }
}
