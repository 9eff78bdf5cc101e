//! `__syslog_connection_hostname`: the sender's name by reverse lookup, as Promtail's
//! `net.LookupAddr` gives it (names in absolute form, with their trailing dot; empty when there is
//! none).
//!
//! The lookup is the C library's `getnameinfo` (`/etc/hosts`, then DNS, as the host is configured),
//! which blocks: it runs on the blocking pool, bounded by [`LOOKUP_TIMEOUT`], and its answer (a name
//! or none) is cached per address for [`TTL`], so a busy sender costs one lookup every few minutes.
//! A TCP connection looks up once, in its own task (never in the accept loop); the UDP listener looks
//! up the first datagram of a sender it has no answer cached for.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
const TTL: Duration = Duration::from_secs(300);
/// Addresses cached before the cache starts over.
const CACHE_MAX: usize = 4096;

#[derive(Default)]
pub struct ReverseDns {
    cache: Mutex<HashMap<IpAddr, (Arc<str>, Instant)>>,
}

impl ReverseDns {
    /// The name of `ip` (`""` when it has none, or the lookup took too long).
    pub async fn lookup(&self, ip: IpAddr) -> Arc<str> {
        if let Some((name, at)) = self.cache.lock().unwrap().get(&ip) {
            if at.elapsed() < TTL {
                return name.clone();
            }
        }
        let lookup = tokio::task::spawn_blocking(move || getnameinfo(ip));
        let name: Arc<str> = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(Some(name))) => format!("{name}.").into(),
            _ => "".into(),
        };
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(ip, (name.clone(), Instant::now()));
        name
    }
}

/// The host name of `ip`, if it has one (`NI_NAMEREQD`: no numeric fallback).
fn getnameinfo(ip: IpAddr) -> Option<String> {
    // SAFETY: the sockaddr is a zeroed, fully initialised sockaddr_in/sockaddr_in6 whose length is
    // passed with it; the host buffer and its length match; getnameinfo writes a NUL-terminated name.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let len = match ip {
            IpAddr::V4(v4) => {
                let sa = &mut storage as *mut _ as *mut libc::sockaddr_in;
                (*sa).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sa).sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
                std::mem::size_of::<libc::sockaddr_in>()
            }
            IpAddr::V6(v6) => {
                let sa = &mut storage as *mut _ as *mut libc::sockaddr_in6;
                (*sa).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*sa).sin6_addr.s6_addr = v6.octets();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        let mut host = [0 as libc::c_char; 1025];
        let rc = libc::getnameinfo(
            &storage as *const _ as *const libc::sockaddr,
            len as libc::socklen_t,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        );
        if rc != 0 {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(host.as_ptr()).to_string_lossy();
        (!name.is_empty()).then(|| name.trim_end_matches('.').to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_has_a_name_with_a_trailing_dot_and_is_cached() {
        let dns = ReverseDns::default();
        let name = dns.lookup("127.0.0.1".parse().unwrap()).await;
        // /etc/hosts names 127.0.0.1 on every Linux this runs on ("localhost" or the host's name).
        assert!(name.ends_with('.') && name.len() > 1, "{name:?}");
        let again = dns.lookup("127.0.0.1".parse().unwrap()).await;
        assert!(Arc::ptr_eq(&name, &again));
    }
}
