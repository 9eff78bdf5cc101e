//! Where a container's log has been read to, exactly: the per-container checkpoint.
//!
//! Docker's logs API can only be asked for the frames at or after a time (`since`, whole seconds through
//! bollard), and it sends them in the order the log driver stored them. Promtail saves the Unix second of
//! the last entry and asks again from that second, so every line of that second is shipped twice after a
//! restart. A nanosecond timestamp alone is not enough either: stdout and stderr are stamped by two
//! goroutines before they take the log driver's lock, so a line stamped earlier can be stored after one
//! stamped later, and two lines can carry the same stamp.
//!
//! So a [`Cursor`] names a place in the daemon's own sequence: "ask with `since`, then skip the first
//! `skip` frames". While reading, [`Window`] counts the frames of the current request per second, which
//! is all it takes to express the position after any frame relative to a `since` one second before that
//! frame's stamp (the margin covers the stdout/stderr reordering, which is microseconds). On disk the value
//! reads `<last stamp as seconds.nanos>;since=<s>;skip=<n>`, under Promtail's key `cursor-<container id>`.
//! A Promtail value (plain Unix seconds) is taken over as "from that second, skip nothing": duplicates of
//! that one second, never a loss, exactly what Promtail itself would do.

use std::collections::VecDeque;
use std::fmt;

const NANOS: i64 = 1_000_000_000;

/// How far a stored frame's stamp may lag behind one stored before it (stdout/stderr reordering).
const REORDER_MARGIN_SECS: i64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    /// Docker's stamp of the last frame consumed, Unix nanoseconds; 0 before the first.
    pub last_ns: i64,
    /// The `since` (Unix seconds) of the request that resumes after that frame; 0 means all the log.
    pub since: i64,
    /// Frames at or after `since`, in the daemon's order, that were consumed already.
    pub skip: u64,
}

impl Cursor {
    /// The positions key Promtail uses for a container.
    pub fn key(container_id: &str) -> String {
        format!("cursor-{container_id}")
    }

    /// Read a stored value: logferry's own form, or Promtail's Unix seconds.
    pub fn parse(value: &str) -> Option<Cursor> {
        let value = value.trim();
        if let Ok(secs) = value.parse::<i64>() {
            return Some(Cursor {
                last_ns: secs.checked_mul(NANOS)?,
                since: secs,
                skip: 0,
            });
        }
        let mut parts = value.split(';');
        let last_ns = parse_stamp(parts.next()?)?;
        let mut since = None;
        let mut skip = None;
        for part in parts {
            match part.split_once('=')? {
                ("since", v) => since = Some(v.parse().ok()?),
                ("skip", v) => skip = Some(v.parse().ok()?),
                _ => return None,
            }
        }
        Some(Cursor {
            last_ns,
            since: since?,
            skip: skip?,
        })
    }

    /// Whether the `index`-th frame (0-based) of a request made with this cursor's `since`, stamped
    /// `ts_ns`, was consumed before. A frame stamped well after the last consumed one cannot have been:
    /// the older frames it would stand for were rotated away while the agent was down.
    pub fn already_read(&self, index: u64, ts_ns: i64) -> bool {
        index < self.skip && ts_ns <= self.last_ns.saturating_add(REORDER_MARGIN_SECS * NANOS)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.last_ns.div_euclid(NANOS);
        let nanos = self.last_ns.rem_euclid(NANOS);
        write!(
            f,
            "{secs}.{nanos:09};since={};skip={}",
            self.since, self.skip
        )
    }
}

fn parse_stamp(s: &str) -> Option<i64> {
    let (secs, nanos) = s.split_once('.')?;
    if nanos.len() != 9 || !nanos.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    secs.checked_mul(NANOS)?.checked_add(nanos.parse().ok()?)
}

/// The frames of one logs request, counted per second of their stamps, so that the position after any of
/// them can be written as a [`Cursor`].
#[derive(Debug)]
pub struct Window {
    /// The request's `since`.
    since: i64,
    /// (second, frames stamped in it), ascending by second; only the last few seconds are kept.
    seconds: VecDeque<(i64, u64)>,
    newest: i64,
}

impl Window {
    pub fn new(since: i64) -> Self {
        Window {
            since,
            seconds: VecDeque::new(),
            newest: i64::MIN,
        }
    }

    /// Count a frame of the request (skipped or not) and return the cursor just after it.
    pub fn advance(&mut self, ts_ns: i64) -> Cursor {
        let sec = ts_ns.div_euclid(NANOS);
        match self.seconds.back_mut() {
            Some((s, n)) if *s == sec => *n += 1,
            Some((s, _)) if *s > sec => {
                // Stored out of stamp order (rare): count it in its own second.
                match self.seconds.binary_search_by_key(&sec, |(s, _)| *s) {
                    Ok(i) => self.seconds[i].1 += 1,
                    Err(i) => self.seconds.insert(i, (sec, 1)),
                }
            }
            _ => self.seconds.push_back((sec, 1)),
        }
        self.newest = self.newest.max(sec);
        // Seconds this far behind the newest can no longer be a resume point's `since`.
        let keep_from = self.newest - 2 * REORDER_MARGIN_SECS;
        while self.seconds.front().is_some_and(|(s, _)| *s < keep_from) {
            self.seconds.pop_front();
        }
        let since = self.since.max(sec - REORDER_MARGIN_SECS);
        let skip = self
            .seconds
            .iter()
            .rev()
            .take_while(|(s, _)| *s >= since)
            .map(|(_, n)| n)
            .sum();
        Cursor {
            last_ns: ts_ns,
            since,
            skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_719_400_000;

    fn ns(sec: i64, nanos: i64) -> i64 {
        sec * NANOS + nanos
    }

    #[test]
    fn value_round_trips_and_takes_over_promtail_seconds() {
        let c = Cursor {
            last_ns: ns(S, 5),
            since: S - 1,
            skip: 42,
        };
        assert_eq!(
            c.to_string(),
            "1719400000.000000005;since=1719399999;skip=42"
        );
        assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        assert_eq!(
            Cursor::parse("1719400000"),
            Some(Cursor {
                last_ns: ns(S, 0),
                since: S,
                skip: 0
            })
        );
        for bad in [
            "",
            "x",
            "1.5",
            "1.000000001;since=1",
            "1.000000001;since=1;skip=2;x=3",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Cursor::key("abc"), "cursor-abc");
    }

    /// Replays a stored sequence: the cursor after frame i, used for a new request, must skip exactly
    /// frames 0..=i of what that request returns.
    fn check_resume(stamps: &[i64]) {
        let mut w = Window::new(0);
        for i in 0..stamps.len() {
            let c = w.advance(stamps[i]);
            // What a request with `since = c.since` returns: the stored frames stamped at or after it.
            let again: Vec<(usize, i64)> = stamps
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, t)| *t >= c.since * NANOS)
                .collect();
            let fresh: Vec<usize> = again
                .iter()
                .enumerate()
                .filter(|(k, (_, t))| !c.already_read(*k as u64, *t))
                .map(|(_, (j, _))| *j)
                .collect();
            assert_eq!(
                fresh,
                ((i + 1)..stamps.len()).collect::<Vec<_>>(),
                "after frame {i}: {c:?}"
            );
        }
    }

    #[test]
    fn resumes_after_many_lines_in_one_second_and_equal_stamps() {
        check_resume(&[
            ns(S, 1),
            ns(S, 2),
            ns(S, 2),
            ns(S, 2),
            ns(S, 9),
            ns(S + 1, 0),
        ]);
    }

    #[test]
    fn resumes_across_stdout_stderr_reordering_at_a_second_boundary() {
        // A stderr line stamped just before the boundary is stored after a stdout line stamped after it.
        check_resume(&[
            ns(S - 1, 999_999_000),
            ns(S, 10),
            ns(S - 1, 999_999_500),
            ns(S, 20),
            ns(S + 3, 0),
            ns(S + 3, 0),
            ns(S + 2, 999_999_999),
        ]);
    }

    #[test]
    fn a_request_with_since_never_resumes_before_it() {
        let mut w = Window::new(S);
        assert_eq!(w.advance(ns(S, 3)).since, S);
        assert_eq!(w.advance(ns(S + 5, 3)).since, S + 4);
    }

    #[test]
    fn frames_much_newer_than_the_cursor_are_not_skipped() {
        // The frames the cursor counted were rotated away: the request returns newer ones only.
        let c = Cursor {
            last_ns: ns(S, 0),
            since: S - 1,
            skip: 3,
        };
        assert!(c.already_read(0, ns(S, 0)));
        assert!(!c.already_read(0, ns(S + 30, 0)));
        assert!(!c.already_read(3, ns(S, 0)));
    }
}
