//! libsystemd's sd-journal API (`man 3 sd-journal`), loaded at run time with `dlopen("libsystemd.so.0")`.
//!
//! Loading at run time keeps the binary free of a link-time dependency: it starts on hosts without
//! libsystemd (containers, other init systems), and only a `journal` job needs the library; it then
//! fails with [`LoadError`], which says what to install. `LOGFERRY_LIBSYSTEMD` names another file to
//! load (a libsystemd outside the linker's path).
//!
//! All the `unsafe` of the journal source is in this file, and it is small on purpose:
//!
//! * [`Library`] resolves every symbol once, into plain function pointers; the library is never
//!   unloaded (it lives in a process-wide `OnceLock`), so the pointers stay valid.
//! * [`Journal`] owns one `sd_journal*`, closes it on drop, and is neither `Send` nor `Sync` (it
//!   holds a raw pointer): sd-journal objects are not thread-safe, and the type system keeps each one
//!   on the thread that opened it.
//! * Data that sd-journal returns (field data, cursors) is borrowed only until the next call on the
//!   same journal; [`Journal::for_each_field`] hands it to a closure that cannot keep it, and cursors
//!   are copied into a `String` and freed at once.
//!
//! Return values follow sd-journal's convention: negative errno on failure.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::OnceLock;

/// `SD_JOURNAL_LOCAL_ONLY`: this machine's journals (system and users), as Promtail opens them.
const SD_JOURNAL_LOCAL_ONLY: c_int = 1;

#[repr(C)]
struct SdJournal {
    _private: [u8; 0],
}

type J = *mut SdJournal;

/// The sd-journal functions the journal source uses, resolved once.
struct Fns {
    open: unsafe extern "C" fn(*mut J, c_int) -> c_int,
    open_directory: unsafe extern "C" fn(*mut J, *const c_char, c_int) -> c_int,
    close: unsafe extern "C" fn(J),
    next: unsafe extern "C" fn(J) -> c_int,
    get_realtime_usec: unsafe extern "C" fn(J, *mut u64) -> c_int,
    set_data_threshold: unsafe extern "C" fn(J, usize) -> c_int,
    restart_data: unsafe extern "C" fn(J),
    /// `sd_journal_enumerate_available_data` (systemd ≥ 246: skips fields it cannot decompress) or,
    /// on older libraries, `sd_journal_enumerate_data`.
    enumerate_data: unsafe extern "C" fn(J, *mut *const c_void, *mut usize) -> c_int,
    add_match: unsafe extern "C" fn(J, *const c_void, usize) -> c_int,
    add_disjunction: unsafe extern "C" fn(J) -> c_int,
    seek_realtime_usec: unsafe extern "C" fn(J, u64) -> c_int,
    seek_cursor: unsafe extern "C" fn(J, *const c_char) -> c_int,
    get_cursor: unsafe extern "C" fn(J, *mut *mut c_char) -> c_int,
    test_cursor: unsafe extern "C" fn(J, *const c_char) -> c_int,
    get_fd: unsafe extern "C" fn(J) -> c_int,
    get_events: unsafe extern "C" fn(J) -> c_int,
    get_timeout: unsafe extern "C" fn(J, *mut u64) -> c_int,
    process: unsafe extern "C" fn(J) -> c_int,
}

pub struct Library {
    fns: Fns,
    /// Kept loaded for the life of the process.
    _lib: libloading::Library,
}

/// libsystemd could not be loaded, or lacks a function the source needs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot load {file} to read the systemd journal: {reason} (install libsystemd0, or set LOGFERRY_LIBSYSTEMD to the library's path)")]
pub struct LoadError {
    pub file: String,
    pub reason: String,
}

static LIBRARY: OnceLock<Result<Library, LoadError>> = OnceLock::new();

/// The process's libsystemd, loaded on first use.
pub fn library() -> Result<&'static Library, LoadError> {
    LIBRARY
        .get_or_init(Library::load)
        .as_ref()
        .map_err(Clone::clone)
}

impl Library {
    fn load() -> Result<Library, LoadError> {
        let file = std::env::var("LOGFERRY_LIBSYSTEMD")
            .ok()
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "libsystemd.so.0".to_owned());
        let fail = |reason: String| LoadError {
            file: file.clone(),
            reason,
        };
        // SAFETY: loading libsystemd runs its ELF constructors, which only set up its own state.
        let lib = unsafe { libloading::Library::new(&file) }.map_err(|e| fail(e.to_string()))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the function pointer type written at each use matches the C prototype in
                // sd-journal.h; the library outlives the pointer (never unloaded).
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| fail(format!("{}: {e}", $name)))?
            };
        }
        // SAFETY: as in sym!.
        let enumerate_data = match unsafe { lib.get(b"sd_journal_enumerate_available_data\0") } {
            Ok(f) => *f,
            Err(_) => sym!("sd_journal_enumerate_data"),
        };
        let fns = Fns {
            open: sym!("sd_journal_open"),
            open_directory: sym!("sd_journal_open_directory"),
            close: sym!("sd_journal_close"),
            next: sym!("sd_journal_next"),
            get_realtime_usec: sym!("sd_journal_get_realtime_usec"),
            set_data_threshold: sym!("sd_journal_set_data_threshold"),
            restart_data: sym!("sd_journal_restart_data"),
            enumerate_data,
            add_match: sym!("sd_journal_add_match"),
            add_disjunction: sym!("sd_journal_add_disjunction"),
            seek_realtime_usec: sym!("sd_journal_seek_realtime_usec"),
            seek_cursor: sym!("sd_journal_seek_cursor"),
            get_cursor: sym!("sd_journal_get_cursor"),
            test_cursor: sym!("sd_journal_test_cursor"),
            get_fd: sym!("sd_journal_get_fd"),
            get_events: sym!("sd_journal_get_events"),
            get_timeout: sym!("sd_journal_get_timeout"),
            process: sym!("sd_journal_process"),
        };
        Ok(Library { fns, _lib: lib })
    }
}

/// sd-journal's negative-errno convention as `io::Result`.
fn check(r: c_int) -> io::Result<c_int> {
    if r < 0 {
        Err(io::Error::from_raw_os_error(-r))
    } else {
        Ok(r)
    }
}

/// What `sd_journal_process` saw happen to the journal files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing relevant.
    Nop,
    /// Entries were appended.
    Append,
    /// Files were added or removed (rotation, vacuuming).
    Invalidate,
}

/// One open `sd_journal`. Not `Send`: it stays on the thread that opened it.
pub struct Journal {
    raw: NonNull<SdJournal>,
    fns: &'static Fns,
}

impl Journal {
    /// This machine's journals (`/var/log/journal`, `/run/log/journal`), system and user.
    pub fn open_local(lib: &'static Library) -> io::Result<Journal> {
        let mut raw: J = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; on success it holds an open journal.
        check(unsafe { (lib.fns.open)(&mut raw, SD_JOURNAL_LOCAL_ONLY) })?;
        Self::wrap(lib, raw)
    }

    /// Every journal file in `dir` (and in its machine-id subdirectories).
    pub fn open_directory(lib: &'static Library, dir: &Path) -> io::Result<Journal> {
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))?;
        let mut raw: J = std::ptr::null_mut();
        // SAFETY: `path` is NUL-terminated and outlives the call; `raw` is a valid out-pointer.
        check(unsafe { (lib.fns.open_directory)(&mut raw, path.as_ptr(), 0) })?;
        Self::wrap(lib, raw)
    }

    fn wrap(lib: &'static Library, raw: J) -> io::Result<Journal> {
        let raw = NonNull::new(raw).ok_or_else(|| io::Error::other("sd_journal_open gave NULL"))?;
        Ok(Journal { raw, fns: &lib.fns })
    }

    fn j(&self) -> J {
        self.raw.as_ptr()
    }

    /// Fields longer than `bytes` are cut to it when enumerated (libsystemd's default is 64 KiB).
    pub fn set_data_threshold(&mut self, bytes: usize) -> io::Result<()> {
        // SAFETY: an open journal; plain value argument.
        check(unsafe { (self.fns.set_data_threshold)(self.j(), bytes) }).map(drop)
    }

    /// Add a `FIELD=value` match (same field ORed, different fields ANDed, as sd-journal does).
    pub fn add_match(&mut self, term: &[u8]) -> io::Result<()> {
        // SAFETY: `term` is valid for its length; sd-journal copies it.
        check(unsafe { (self.fns.add_match)(self.j(), term.as_ptr().cast(), term.len()) }).map(drop)
    }

    /// Start a new OR group of matches (journalctl's `+`).
    pub fn add_disjunction(&mut self) -> io::Result<()> {
        // SAFETY: an open journal.
        check(unsafe { (self.fns.add_disjunction)(self.j()) }).map(drop)
    }

    /// Move to the next entry; false at the end.
    pub fn next_entry(&mut self) -> io::Result<bool> {
        // SAFETY: an open journal.
        check(unsafe { (self.fns.next)(self.j()) }).map(|n| n > 0)
    }

    /// The current entry's wall-clock time, µs since the epoch.
    pub fn realtime_usec(&mut self) -> io::Result<u64> {
        let mut usec = 0u64;
        // SAFETY: `usec` is a valid out-pointer.
        check(unsafe { (self.fns.get_realtime_usec)(self.j(), &mut usec) })?;
        Ok(usec)
    }

    /// Call `f` with each `FIELD=value` datum of the current entry, in the entry's order. The bytes
    /// are only valid during the call.
    pub fn for_each_field(&mut self, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        // SAFETY: an open journal positioned on an entry.
        unsafe { (self.fns.restart_data)(self.j()) };
        loop {
            let mut data: *const c_void = std::ptr::null();
            let mut len = 0usize;
            // SAFETY: valid out-pointers. On success `data` points to `len` bytes owned by the
            // journal, valid until the next call on it; the slice does not outlive this iteration.
            let r = check(unsafe { (self.fns.enumerate_data)(self.j(), &mut data, &mut len) })?;
            if r == 0 {
                return Ok(());
            }
            if data.is_null() {
                continue;
            }
            // SAFETY: see above.
            f(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) });
        }
    }

    /// The current entry's cursor.
    pub fn cursor(&mut self) -> io::Result<String> {
        let mut raw: *mut c_char = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; on success it is a malloc'd C string we must free.
        check(unsafe { (self.fns.get_cursor)(self.j(), &mut raw) })?;
        if raw.is_null() {
            return Err(io::Error::other("sd_journal_get_cursor gave NULL"));
        }
        // SAFETY: a NUL-terminated string from libsystemd, copied before it is freed.
        let cursor = unsafe { CStr::from_ptr(raw) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: allocated with malloc by sd_journal_get_cursor, freed once.
        unsafe { libc::free(raw.cast()) };
        Ok(cursor)
    }

    /// Whether the current entry is the one `cursor` names.
    pub fn test_cursor(&mut self, cursor: &str) -> io::Result<bool> {
        let c = c_string(cursor)?;
        // SAFETY: `c` is NUL-terminated and outlives the call.
        check(unsafe { (self.fns.test_cursor)(self.j(), c.as_ptr()) }).map(|r| r > 0)
    }

    /// Seek to `cursor`, or to the entry nearest to it in time when it is gone; `next` then reads it.
    pub fn seek_cursor(&mut self, cursor: &str) -> io::Result<()> {
        let c = c_string(cursor)?;
        // SAFETY: `c` is NUL-terminated and outlives the call.
        check(unsafe { (self.fns.seek_cursor)(self.j(), c.as_ptr()) }).map(drop)
    }

    /// Seek to the first entry at or after `usec` (wall clock, µs since the epoch).
    pub fn seek_realtime_usec(&mut self, usec: u64) -> io::Result<()> {
        // SAFETY: an open journal; plain value argument.
        check(unsafe { (self.fns.seek_realtime_usec)(self.j(), usec) }).map(drop)
    }

    /// The fd that becomes readable when the journal changes (inotify), with the poll events to ask
    /// for and the absolute `CLOCK_MONOTONIC` deadline in µs after which to call [`Journal::process`]
    /// anyway (`u64::MAX`: none, the usual case with inotify).
    pub fn wait_handle(&mut self) -> io::Result<(c_int, i16, u64)> {
        // SAFETY: an open journal; `timeout` is a valid out-pointer.
        let fd = check(unsafe { (self.fns.get_fd)(self.j()) })?;
        let events = check(unsafe { (self.fns.get_events)(self.j()) })?;
        let mut timeout = u64::MAX;
        check(unsafe { (self.fns.get_timeout)(self.j(), &mut timeout) })?;
        Ok((fd, events as i16, timeout))
    }

    /// Take in the changes the fd reported.
    pub fn process(&mut self) -> io::Result<Change> {
        // SAFETY: an open journal.
        Ok(match check(unsafe { (self.fns.process)(self.j()) })? {
            0 => Change::Nop,
            1 => Change::Append,
            _ => Change::Invalidate,
        })
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // SAFETY: the journal was opened by us and is closed once.
        unsafe { (self.fns.close)(self.j()) }
    }
}

fn c_string(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in cursor"))
}
