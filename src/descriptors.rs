//! File descriptors: how many the agent may use, and what running out of them means.
//!
//! A process gets `RLIMIT_NOFILE` descriptors. Left alone, the file source would take one per tailed
//! file and the HTTP server one per connection, until a directory listing, a push to Loki or a buffer
//! segment fails with EMFILE. So both are bounded from the limit ([`Limits`]): tailers hold at most
//! `files` files open at once (idle ones close while others wait; see `source::file::open_files`), the
//! server serves at most `http_connections` connections, and the rest is the reserve for everything else.
//!
//! Running out anyway (another process's share of the system table, `ENFILE`; a limit lowered at run
//! time) means "cannot open now", never "the file is gone": [`is_exhaustion`] tells the two apart, and
//! callers keep their position and retry after a backoff. Each occurrence is counted in
//! `logferry_descriptors_exhausted_total{op}` and logged (at most once a minute, see [`crate::logging`]).

use std::io;
use std::time::Duration;

use crate::metrics::Metrics;

/// How long to wait before opening again after running out of descriptors, at first and at most.
pub const RETRY_MIN: Duration = Duration::from_millis(100);
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// The descriptor budget of the process, derived from its open files limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Files tailers may hold open at once.
    pub files: usize,
    /// HTTP server connections served at once when `server.http_listen_conn_limit` is not set.
    pub http_connections: usize,
}

impl Limits {
    /// A quarter of the limit (at least 48, at most 1024) is kept for sinks, buffers, the runtime and
    /// the server's connections; tailers get the rest (at least 8). The server gets a sixteenth (4 to
    /// 256): enough for scrapers and people, not enough to starve the files.
    pub fn from_nofile(nofile: u64) -> Self {
        let n = usize::try_from(nofile).unwrap_or(usize::MAX);
        let reserve = (n / 4).clamp(48, 1024);
        Limits {
            files: n.saturating_sub(reserve).max(8),
            http_connections: (n / 16).clamp(4, 256),
        }
    }
}

/// Raise the soft open-files limit to the hard one, as Go's runtime does for Promtail: a thousand
/// tailed files need a thousand descriptors, and systemd's default soft limit is 1024. Returns the
/// soft limit in force afterwards (1024 if it cannot be read).
pub fn raise_soft_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                ..lim
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// Whether `e` says "no descriptor free now" (the process's or the system's), not anything about the
/// file itself.
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Count and log one failure for lack of descriptors. `op` says what failed (`open_file`,
/// `list_directory`, `accept`); the log line names no file, so it is written once a minute at most.
pub fn report_exhaustion(metrics: &Metrics, op: &'static str, e: &io::Error) {
    metrics
        .descriptors_exhausted
        .get_or_create(&crate::metrics::OpLabel { op: op.into() })
        .inc();
    tracing::warn!(op, error = %e,
        "out of file descriptors: positions are kept and the operation is retried; \
         raise the open files limit (ulimit -n, systemd LimitNOFILE=)");
}

/// The next wait of an exponential backoff between [`RETRY_MIN`] and [`RETRY_MAX`].
pub fn next_retry(wait: Duration) -> Duration {
    (wait * 2).clamp(RETRY_MIN, RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_leaves_a_reserve_and_bounds_the_server() {
        let l = Limits::from_nofile(128);
        assert_eq!((l.files, l.http_connections), (80, 8));
        let l = Limits::from_nofile(1024);
        assert_eq!((l.files, l.http_connections), (768, 64));
        let l = Limits::from_nofile(1 << 20);
        assert_eq!((l.files, l.http_connections), ((1 << 20) - 1024, 256));
        let l = Limits::from_nofile(20);
        assert_eq!((l.files, l.http_connections), (8, 4));
    }

    #[test]
    fn exhaustion_is_not_absence() {
        assert!(is_exhaustion(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(is_exhaustion(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!is_exhaustion(&io::Error::from_raw_os_error(libc::ENOENT)));
        assert!(!is_exhaustion(&io::Error::from_raw_os_error(libc::EACCES)));
    }
}
