//! The journal reader: one dedicated thread per `journal` job, which owns the `sd_journal` (it is not
//! thread-safe), reads entries in chunks, formats them, and hands each chunk with the cursor of its last
//! entry to the job's task over a bounded channel. A full channel blocks the thread: that is the
//! backpressure, and the journal keeps the data on disk meanwhile.
//!
//! **Following.** At the end of the journal the thread sleeps in `poll(2)` on the journal's inotify fd
//! (`sd_journal_get_fd`) and on an eventfd that [`Stop`] writes, so an idle journal costs no CPU and
//! stopping is immediate; `sd_journal_process` then takes in the change. Rotation and vacuuming arrive the
//! same way (files added and removed) and sd-journal reads on across them.
//!
//! **Start.** After a saved cursor when its entry is still in the journal and newer than `max_age`;
//! otherwise at `now - max_age` (Promtail's rule), with a log line that says why: a cursor that no
//! longer exists (vacuumed, from another machine or boot, a clock jump) is never silently stuck on.
//!
//! **Errors.** An entry whose fields cannot be read is skipped and counted. An error moving through
//! the journal (a file rotated or truncated under the reader: "bad message") closes it and opens it
//! again after the last entry read, backing off while it repeats.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::format::{Formatted, Formatter};
use super::sys::{Journal, Library};
use crate::entry::Entry;
use crate::targets::{JournalProgress, Targets};

/// Entries per chunk, at most.
const CHUNK_ENTRIES: usize = 1024;
/// Line bytes per chunk, at most.
const CHUNK_BYTES: usize = 512 * 1024;
/// Reopening after an error waits this long at first, doubling while errors repeat.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Entries read together, with the cursor of the last entry read (dropped entries included).
#[derive(Debug, Default)]
pub struct Chunk {
    pub entries: Vec<Entry>,
    pub cursor: Option<String>,
    pub no_message: u64,
    pub empty_labels: u64,
    /// Entries whose timestamp or fields could not be read.
    pub unreadable: u64,
}

/// What the reader needs besides the library.
pub struct Settings {
    pub job: Arc<str>,
    /// `None`: this machine's journals.
    pub path: Option<PathBuf>,
    /// `matches` as OR groups of `FIELD=value` terms.
    pub match_groups: Vec<Vec<String>>,
    pub max_age: Duration,
    pub saved_cursor: Option<String>,
    /// Fields longer than this are cut by libsystemd.
    pub field_limit: usize,
}

/// Tells the reader thread to stop, waking it from `poll`.
pub struct Stop {
    flag: AtomicBool,
    fd: OwnedFd,
}

impl Stop {
    pub fn new() -> io::Result<Arc<Stop>> {
        // SAFETY: eventfd(2) with valid flags; the result is checked before it is owned.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new(Stop {
            flag: AtomicBool::new(false),
            // SAFETY: a fresh fd that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }))
    }

    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

pub struct Reader {
    pub lib: &'static Library,
    /// Where a failure shows (`/targets`).
    pub targets: Arc<Targets>,
    pub settings: Settings,
    pub formatter: Formatter,
    pub stop: Arc<Stop>,
    pub chunks: mpsc::Sender<Chunk>,
}

/// Why reading ended.
enum Ended {
    Stopped,
    Failed(io::Error),
}

impl Reader {
    /// Read until stopped (or the receiving task is gone).
    pub fn run(mut self) {
        let job = self.settings.job.clone();
        let mut last_read: Option<String> = None;
        let mut first = true;
        let mut retry = RETRY_MIN;
        loop {
            if self.stop.is_set() {
                return;
            }
            let opened_at = Instant::now();
            let result = self.open().and_then(|mut journal| {
                if first {
                    last_read = self.start(&mut journal)?;
                } else {
                    self.reposition(&mut journal, last_read.as_deref())?;
                }
                Ok(journal)
            });
            let ended = match result {
                Ok(mut journal) => {
                    first = false;
                    self.read(&mut journal, &mut last_read)
                }
                Err(e) => Ended::Failed(e),
            };
            match ended {
                Ended::Stopped => return,
                Ended::Failed(e) => {
                    self.targets.journal_failed(&job, e.to_string());
                    if opened_at.elapsed() > RETRY_MAX {
                        retry = RETRY_MIN;
                    }
                    tracing::warn!(job = %job, error = %e, retry_in = ?retry,
                        "error reading the systemd journal; opening it again after the last entry read");
                    if self.sleep(retry) {
                        return;
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    fn open(&self) -> io::Result<Journal> {
        let mut journal = match &self.settings.path {
            Some(dir) => Journal::open_directory(self.lib, dir)?,
            None => Journal::open_local(self.lib)?,
        };
        // Set up the inotify watches before the first read, so that no change is missed.
        journal.wait_handle()?;
        journal.set_data_threshold(self.settings.field_limit)?;
        for (i, group) in self.settings.match_groups.iter().enumerate() {
            if i > 0 {
                journal.add_disjunction()?;
            }
            for term in group {
                journal.add_match(term.as_bytes())?;
            }
        }
        Ok(journal)
    }

    /// Position a fresh journal where the job starts; returns the cursor it resumes after, if any.
    fn start(&self, journal: &mut Journal) -> io::Result<Option<String>> {
        let job = &self.settings.job;
        let max_age = self.settings.max_age;
        let Some(cursor) = self.settings.saved_cursor.as_deref() else {
            tracing::info!(job = %job, max_age = ?max_age, "no saved journal cursor; reading from max_age ago");
            journal.seek_realtime_usec(since_usec(max_age))?;
            return Ok(None);
        };
        let why = match find(journal, cursor) {
            Ok(Some(usec)) if now_usec().saturating_sub(usec) < max_age.as_micros() as u64 => {
                tracing::info!(job = %job, cursor, "resuming the journal after the saved cursor");
                return Ok(Some(cursor.to_owned()));
            }
            Ok(Some(_)) => "the saved cursor's entry is older than max_age".to_owned(),
            Ok(None) => {
                "the saved cursor's entry is not in the journal (vacuumed, written on another \
                         machine or boot, or the clock jumped)"
                    .to_owned()
            }
            Err(e) => format!("the saved cursor cannot be used: {e}"),
        };
        tracing::warn!(job = %job, cursor, max_age = ?max_age, reason = %why,
            "journal cursor not resumed; reading from max_age ago");
        journal.seek_realtime_usec(since_usec(max_age))?;
        Ok(None)
    }

    /// After reopening: continue after the last entry read, or from the entry nearest to it in time
    /// if it has gone meanwhile (vacuumed while being read).
    fn reposition(&self, journal: &mut Journal, last_read: Option<&str>) -> io::Result<()> {
        let Some(cursor) = last_read else {
            return self.start(journal).map(drop);
        };
        if find(journal, cursor)?.is_none() {
            tracing::warn!(job = %self.settings.job, cursor,
                "the last entry read is gone from the journal; reading on from the nearest entry");
            journal.seek_cursor(cursor)?;
        }
        Ok(())
    }

    fn read(&mut self, journal: &mut Journal, last_read: &mut Option<String>) -> Ended {
        loop {
            let mut chunk = Chunk::default();
            let mut bytes = 0;
            let mut read = 0usize;
            let mut failed = None;
            let mut at_end = false;
            while chunk.entries.len() < CHUNK_ENTRIES && bytes < CHUNK_BYTES {
                match journal.next_entry() {
                    Ok(true) => {}
                    Ok(false) => {
                        at_end = true;
                        break;
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
                read += 1;
                match self.entry(journal) {
                    Ok(Formatted::Entry(e)) => {
                        bytes += e.line.len();
                        chunk.entries.push(e);
                    }
                    Ok(Formatted::NoMessage) => chunk.no_message += 1,
                    Ok(Formatted::EmptyLabels) => chunk.empty_labels += 1,
                    Err(e) => {
                        // One entry that cannot be read (corrupt, or its file vanished under us) is
                        // skipped: reopening would land on it again.
                        if chunk.unreadable == 0 {
                            tracing::warn!(job = %self.settings.job, error = %e,
                                "journal entry cannot be read; skipped");
                        }
                        chunk.unreadable += 1;
                    }
                }
            }
            if read > 0 {
                chunk.cursor = journal.cursor().ok();
            }
            if read > 0 || at_end {
                self.report(&chunk, read, at_end);
            }
            if read > 0 {
                if chunk.cursor.is_some() {
                    last_read.clone_from(&chunk.cursor);
                }
                if self.chunks.blocking_send(chunk).is_err() {
                    return Ended::Stopped;
                }
            }
            if let Some(e) = failed {
                return Ended::Failed(e);
            }
            if self.stop.is_set() {
                return Ended::Stopped;
            }
            if at_end {
                match self.wait(journal) {
                    Ok(true) => return Ended::Stopped,
                    Ok(false) => {}
                    Err(e) => return Ended::Failed(e),
                }
            }
        }
    }

    /// Progress for `/targets`, once per chunk (and when the end is reached with nothing new).
    fn report(&self, chunk: &Chunk, read: usize, at_end: bool) {
        self.targets.journal_read(
            &self.settings.job,
            JournalProgress {
                entries: read as u64,
                cursor: chunk.cursor.as_deref(),
                newest_usec: chunk.entries.last().map(|e| (e.timestamp / 1000) as u64),
                at_end,
            },
        );
    }

    fn entry(&mut self, journal: &mut Journal) -> io::Result<Formatted> {
        let usec = journal.realtime_usec()?;
        self.formatter
            .format(usec, |each| journal.for_each_field(|d| each(d)))
    }

    /// Sleep until the journal changes or the reader is stopped (true).
    fn wait(&self, journal: &mut Journal) -> io::Result<bool> {
        let (fd, events, deadline) = journal.wait_handle()?;
        let timeout_ms = if deadline == u64::MAX {
            -1
        } else {
            let left = deadline.saturating_sub(monotonic_usec());
            left.div_ceil(1000).min(i32::MAX as u64) as i32
        };
        if self.poll(Some((fd, events)), timeout_ms)? {
            return Ok(true);
        }
        journal.process()?;
        Ok(false)
    }

    /// Sleep for `d` unless stopped first (true).
    fn sleep(&self, d: Duration) -> bool {
        self.poll(None, d.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(true)
    }

    /// poll(2) on the stop eventfd and `fd`; true if stopped.
    fn poll(&self, fd: Option<(i32, i16)>, timeout_ms: i32) -> io::Result<bool> {
        let mut fds = [
            libc::pollfd {
                fd: self.stop.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: fd.map_or(-1, |f| f.0),
                events: fd.map_or(0, |f| f.1),
                revents: 0,
            },
        ];
        loop {
            // SAFETY: `fds` is a live array of two pollfd; a negative fd is ignored by poll.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
            if r >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(self.stop.is_set())
    }
}

/// Seek to `cursor` and read its entry: its realtime timestamp if it is there (the journal is then
/// positioned on it, so reading goes on after it), `None` if it is gone.
fn find(journal: &mut Journal, cursor: &str) -> io::Result<Option<u64>> {
    journal.seek_cursor(cursor)?;
    if !journal.next_entry()? || !journal.test_cursor(cursor)? {
        return Ok(None);
    }
    journal.realtime_usec().map(Some)
}

fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn since_usec(max_age: Duration) -> u64 {
    now_usec().saturating_sub(max_age.as_micros().min(u64::MAX as u128) as u64)
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}
