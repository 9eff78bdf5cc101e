//! The connection to the Docker daemon: `host` as Promtail writes it, API version negotiation, and
//! errors put in words a user can act on. Bollard does the HTTP over the unix socket or TCP.

use std::time::Duration;

use bollard::Docker;

/// How long a request may wait for the daemon's answer (not a log stream, which is open-ended).
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Why the daemon cannot be used right now, sorted into what the user has to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonError {
    /// The socket file is not there: daemon down, or not mounted into the agent's container.
    SocketMissing { path: String },
    /// The socket is there but the agent may not use it.
    PermissionDenied { host: String },
    /// Nothing listens (daemon stopped or restarting).
    Unreachable { host: String, reason: String },
    /// Anything else the daemon or the connection answered.
    Other { host: String, reason: String },
}

impl DaemonError {
    /// A short name for the kind, to log a failure once and not again until the kind changes.
    pub fn kind(&self) -> &'static str {
        match self {
            DaemonError::SocketMissing { .. } => "socket_missing",
            DaemonError::PermissionDenied { .. } => "permission_denied",
            DaemonError::Unreachable { .. } => "unreachable",
            DaemonError::Other { .. } => "other",
        }
    }
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::SocketMissing { path } => write!(
                f,
                "Docker socket {path} does not exist: is the Docker daemon running, and (in a container) \
                 is the socket mounted, e.g. -v /var/run/docker.sock:/var/run/docker.sock:ro?"
            ),
            DaemonError::PermissionDenied { host } => write!(
                f,
                "permission denied on the Docker socket {host}: the user running logferry must be in the \
                 docker group (usermod -aG docker <user>, or SupplementaryGroups=docker in the systemd unit) \
                 or be root"
            ),
            DaemonError::Unreachable { host, reason } => {
                write!(f, "cannot reach the Docker daemon at {host}: {reason}")
            }
            DaemonError::Other { host, reason } => {
                write!(f, "Docker daemon at {host}: {reason}")
            }
        }
    }
}

/// Connect to `host` (`unix:///path`, `tcp://host:port`, `http://host:port`) and agree on the API
/// version (the newest both sides speak; Promtail's client negotiates the same way).
pub async fn connect(host: &str) -> Result<Docker, DaemonError> {
    let version = bollard::API_DEFAULT_VERSION;
    let docker = if let Some(path) = host.strip_prefix("unix://") {
        Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, version)
    } else {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, version)
    }
    .map_err(|e| classify(host, &e))?;
    let docker = tokio::time::timeout(
        Duration::from_secs(REQUEST_TIMEOUT_SECS),
        docker.negotiate_version(),
    )
    .await
    .map_err(|_| DaemonError::Unreachable {
        host: host.to_owned(),
        reason: "no answer to the version request".into(),
    })?;
    docker.map_err(|e| classify(host, &e))
}

/// Sort a bollard error into a [`DaemonError`].
pub fn classify(host: &str, err: &bollard::errors::Error) -> DaemonError {
    use bollard::errors::Error as B;
    if let B::SocketNotFoundError(path) = err {
        return DaemonError::SocketMissing { path: path.clone() };
    }
    // `IOError` is `#[error(transparent)]`: its `source()` skips the io::Error itself.
    let direct = match err {
        B::IOError { err } => Some(err),
        _ => None,
    };
    let chain = std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    });
    let ios = direct
        .into_iter()
        .chain(chain.filter_map(|e| e.downcast_ref::<std::io::Error>()));
    for io in ios {
        use std::io::ErrorKind as K;
        match io.kind() {
            K::PermissionDenied => {
                return DaemonError::PermissionDenied {
                    host: host.to_owned(),
                }
            }
            K::NotFound if host.starts_with("unix://") => {
                return DaemonError::SocketMissing {
                    path: host.trim_start_matches("unix://").to_owned(),
                }
            }
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::UnexpectedEof => {
                return DaemonError::Unreachable {
                    host: host.to_owned(),
                    reason: io.to_string(),
                }
            }
            _ => {}
        }
    }
    DaemonError::Other {
        host: host.to_owned(),
        reason: err.to_string(),
    }
}

/// True if the daemon answered 404: the container is gone.
pub fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Exponential backoff between reconnection attempts, with jitter.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The wait before the next attempt; doubles up to the maximum.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        // ±20 % so that many agents restarted with one daemon do not reconnect in lockstep.
        let jitter = 0.8 + fastrand::f64() * 0.4;
        wait.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_what_to_do() {
        let denied = classify(
            "unix:///var/run/docker.sock",
            &bollard::errors::Error::IOError {
                err: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            },
        );
        assert_eq!(denied.kind(), "permission_denied");
        assert!(denied.to_string().contains("docker group"), "{denied}");
        let missing = classify(
            "unix:///nope.sock",
            &bollard::errors::Error::SocketNotFoundError("/nope.sock".into()),
        );
        assert!(missing.to_string().contains("/nope.sock does not exist"));
        assert!(is_not_found(
            &bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message: "No such container".into()
            }
        ));
    }

    #[test]
    fn backoff_doubles_to_its_maximum() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<u128> = (0..4).map(|_| b.next_wait().as_millis()).collect();
        assert!((80..=120).contains(&waits[0]), "{waits:?}");
        assert!((160..=240).contains(&waits[1]), "{waits:?}");
        assert!((280..=420).contains(&waits[2]) && (280..=420).contains(&waits[3]));
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(120));
    }
}
