//! Giving memory back after huge lines.
//!
//! The agent reuses its scratch buffers (a read chunk, a protobuf and its snappy copy, a buffer
//! record), so a steady flow allocates nothing. A huge line (up to 16 MiB) grows each of them, and
//! without care they would keep that size for good: a few hundred megabytes for an agent whose steady
//! state is a few tens. Two things give it back:
//!
//! * [`release_if_large`]: a scratch buffer past [`KEEP_BYTES`] is freed once the line is done, at
//!   the point where its owner is done with it, instead of being kept for reuse.
//! * glibc's malloc, left to itself, serves every block size it has once freed from its heaps from
//!   then on (its mmap threshold rises to the largest block freed, up to 32 MiB, and its trim
//!   threshold to twice that), and a thread's heap gives back nothing below that: after a burst of
//!   8 MiB lines the agent stayed at 248 MB resident, and with the scratch buffers freed malloc still
//!   held 199 MB, 0.7 MB of it in use.
//!   [`tune_allocator`] fixes both thresholds instead: a block of [`KEEP_BYTES`] or more is mapped
//!   on its own and unmapped when freed, and a heap keeps at most 2 MiB free at its top. Blocks
//!   below, which a steady flow allocates (batches, chunks), are served from the heaps as before.
//! * Freed blocks below the threshold in the middle of a heap stay with malloc. Once huge lines were
//!   seen and a few seconds passed without another one (their entries were sent and dropped too),
//!   [`spawn_trimmer`]'s task asks malloc to return its free pages to the kernel (`malloc_trim`).
//!   Nothing is trimmed while no huge line is seen, so the steady state pays nothing. (After 200
//!   lines of 3 MB, below the mmap threshold: 33 MB resident with the trim, 95 MB without.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Scratch buffers larger than this (a batch is 1 MiB by default) are freed after use.
pub const KEEP_BYTES: usize = 4 * 1024 * 1024;

/// Free bytes a heap keeps at its top for the next blocks (glibc's default is 128 KiB, raised with
/// its dynamic threshold).
const TRIM_BYTES: usize = 2 * 1024 * 1024;

/// How long after the last huge block the free memory is trimmed.
const QUIET: Duration = Duration::from_secs(2);

/// Milliseconds since [`epoch`] of the last huge block released; 0 for none since the last trim.
static LAST_LARGE_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Note that a block of more than [`KEEP_BYTES`] was freed (or is about to be), so that the free
/// memory is trimmed once such blocks stop coming.
pub fn note_large() {
    let ms = epoch().elapsed().as_millis() as u64;
    LAST_LARGE_MS.store(ms.max(1), Ordering::Relaxed);
}

/// Empties `buf`, and frees it if it grew past [`KEEP_BYTES`] (a huge line went through it).
pub fn release_if_large<T>(buf: &mut Vec<T>) {
    release_beyond(buf, KEEP_BYTES);
}

/// Empties `buf`, and frees it if it grew past `keep` bytes or [`KEEP_BYTES`], whichever is larger
/// (a sink whose batches are larger than [`KEEP_BYTES`] keeps a buffer of twice its batch size).
pub fn release_beyond<T>(buf: &mut Vec<T>, keep: usize) {
    buf.clear();
    if buf.capacity().saturating_mul(std::mem::size_of::<T>()) > keep.max(KEEP_BYTES) {
        *buf = Vec::new();
        note_large();
    }
}

/// Returns free heap pages to the kernel if huge blocks were freed and none for `QUIET` (2 s); whether
/// it did.
pub fn trim_if_quiet() -> bool {
    let last = LAST_LARGE_MS.load(Ordering::Relaxed);
    if last == 0 || epoch().elapsed().as_millis() as u64 - last < QUIET.as_millis() as u64 {
        return false;
    }
    if LAST_LARGE_MS
        .compare_exchange(last, 0, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return false; // Another huge block meanwhile: wait for the quiet again.
    }
    trim();
    true
}

/// Sets glibc malloc's mmap and trim thresholds (see the module doc) unless the operator set them
/// (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` or `GLIBC_TUNABLES`, which then stand); call
/// it first thing in `main`, before threads start. Other allocators (musl's) need nothing.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set_by_operator = |name: &str| {
            std::env::var_os(name).is_some()
                || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc."))
        };
        // SAFETY: mallopt only sets malloc's parameters; called before any other thread exists.
        unsafe {
            if !set_by_operator("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, KEEP_BYTES as libc::c_int);
            }
            if !set_by_operator("MALLOC_TRIM_THRESHOLD_") {
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_BYTES as libc::c_int);
            }
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks malloc's own arenas under their locks.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// Runs [`trim_if_quiet`] every second until `stop` turns true.
pub fn spawn_trimmer(mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if trim_if_quiet() {
                tracing::debug!("returned the memory of huge lines to the system");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_buffers_are_kept_and_large_ones_freed() {
        let mut small: Vec<u8> = Vec::with_capacity(1024);
        small.push(1);
        release_if_large(&mut small);
        assert!(small.is_empty() && small.capacity() >= 1024);
        let mut large: Vec<u8> = vec![0; KEEP_BYTES + 1];
        release_if_large(&mut large);
        assert_eq!(large.capacity(), 0);
    }
}
