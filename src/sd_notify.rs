//! systemd's service notification protocol (`sd_notify(3)`), for `Type=notify` units: `READY=1` once
//! the config is loaded and the sources and sinks are started, `WATCHDOG=1` every half `WATCHDOG_USEC`
//! when the unit sets `WatchdogSec=`, `RELOADING=1` then `READY=1` around a config reload (SIGHUP), and
//! `STOPPING=1` when a shutdown begins.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the unix socket named by `$NOTIFY_SOCKET`: a
//! path, or an abstract name written `@name`. That is a few lines over `std`'s `UnixDatagram`, so no
//! crate (libsystemd's `sd_notify` would add a dlopen or a link; the small crates add nothing we need).
//! Without `$NOTIFY_SOCKET` (not under systemd, or `Type=simple`) every call does nothing.
//! Notifications are best effort, as in libsystemd: a failure is logged once, never fatal.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where notifications go; `None` when not run by systemd with a notify socket.
pub struct Notifier {
    socket: UnixDatagram,
    addr: NotifyAddress,
    failed_once: AtomicBool,
}

/// The notify socket's address: a path, or a Linux abstract name (`@name`).
enum NotifyAddress {
    Path(std::path::PathBuf),
    #[cfg(target_os = "linux")]
    Abstract(Vec<u8>),
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names, if any.
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        Notifier::new(&value.to_string_lossy())
    }

    fn new(socket: &str) -> Option<Notifier> {
        let addr = match socket.strip_prefix('@') {
            #[cfg(target_os = "linux")]
            Some(name) => NotifyAddress::Abstract(name.as_bytes().to_vec()),
            #[cfg(not(target_os = "linux"))]
            Some(_) => return None,
            None if socket.starts_with('/') => NotifyAddress::Path(socket.into()),
            // systemd only ever sets absolute paths or abstract names; anything else is not for us.
            None => return None,
        };
        let socket = match UnixDatagram::unbound() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a socket for systemd notifications");
                return None;
            }
        };
        Some(Notifier {
            socket,
            addr,
            failed_once: AtomicBool::new(false),
        })
    }

    /// Sends one notification, e.g. `"READY=1"` or `"STOPPING=1\nSTATUS=flushing"`.
    pub fn notify(&self, state: &str) {
        let sent = match &self.addr {
            NotifyAddress::Path(path) => self.socket.send_to(state.as_bytes(), path),
            #[cfg(target_os = "linux")]
            NotifyAddress::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|addr| self.socket.send_to_addr(state.as_bytes(), &addr))
            }
        };
        if let Err(e) = sent {
            if !self.failed_once.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
            }
        }
    }
}

/// `CLOCK_MONOTONIC` in microseconds, which `RELOADING=1` carries as `MONOTONIC_USEC` (systemd's
/// `Type=notify-reload` wants it to tell this reload from an earlier one).
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the local struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises, when
/// it is set for this process (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != me {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// Pings the watchdog every `interval` until the process exits. The pings come from a task on the
/// agent's runtime, so they stop when the runtime is stuck, which is what the watchdog is for.
pub fn spawn_watchdog(notifier: std::sync::Arc<Notifier>, interval: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            notifier.notify("WATCHDOG=1");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_of_watchdog_usec_for_this_process() {
        let half = Some(Duration::from_millis(15_000));
        assert_eq!(watchdog_interval_from(Some("30000000"), None, 7), half);
        assert_eq!(watchdog_interval_from(Some("30000000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, None, 7), None);
    }

    #[test]
    fn a_notification_reaches_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        Notifier::new(path.to_str().unwrap())
            .unwrap()
            .notify("READY=1");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_notification_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("logferry-notify-unit-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::new(&format!("@{name}"))
            .unwrap()
            .notify("STOPPING=1");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn a_relative_socket_name_is_ignored() {
        assert!(Notifier::new("notify.sock").is_none());
    }
}
