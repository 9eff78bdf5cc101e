//! The real Docker engine for the Docker source's tests and benchmark: the `docker` CLI, containers
//! that are removed when the test ends ([`Containers`]), a config for a `docker_sd_configs` job, and a
//! proxy in front of the daemon's socket that can go down and come back like a restarting daemon
//! ([`SocketProxy`]), and a TCP port in front of the socket ([`TcpProxy`]).
//!
//! Every test gets a run id; its containers carry the label `logferry-test=<run id>` and the job lists
//! only those, so parallel tests (and other containers on the machine) never see each other's logs.
//! The image is `tests/setup.sh`'s `logferry-test-busybox:latest`.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::fixtures::TestDir;

pub const IMAGE: &str = "logferry-test-busybox:latest";
pub const SOCKET: &str = "/var/run/docker.sock";

/// Runs `docker <args>`; its stdout, trimmed. Panics with stderr on failure.
pub fn docker<S: AsRef<str>>(args: &[S]) -> String {
    let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
    let out = Command::new("docker")
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("run docker {args:?}: {e}"));
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The engine answers and the test image exists, or the test fails saying why: `tests/setup.sh`
/// makes the image, and a suite that skipped every Docker test would prove nothing.
pub fn require() {
    assert!(
        available(),
        "no Docker engine, or no {IMAGE} image: run tests/setup.sh"
    );
}

/// Whether the engine answers and the test image exists (the benches skip their Docker runs when not).
pub fn available() -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED: no Docker engine or no {IMAGE} image (run tests/setup.sh)");
    }
    ok
}

/// `awk` that prints lines `start..end` of [`super::numbered_line`]'s series.
pub fn awk_numbered(prefix: &str, start: usize, end: usize) -> String {
    format!(
        "awk 'BEGIN{{for(i={start};i<{end};i++) printf \"{prefix}-%06d payload the quick brown fox jumps over the lazy dog\\n\", i}}'"
    )
}

/// The containers of one test, all removed (`docker rm -f`) when it is dropped, pass or fail.
pub struct Containers {
    pub run: String,
    /// By ID: a test may rename them.
    ids: Mutex<Vec<String>>,
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

impl Default for Containers {
    fn default() -> Self {
        Self::new()
    }
}

impl Containers {
    pub fn new() -> Self {
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Containers {
            run: format!("lf{}x{n}x{nanos:x}", std::process::id()),
            ids: Mutex::new(Vec::new()),
        }
    }

    /// The full name of this run's container `short`.
    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.run)
    }

    /// `docker create` a container of this run (`opts` before the image, then `sh -c script`); returns
    /// its ID.
    pub fn create(&self, short: &str, opts: &[&str], script: &str) -> String {
        let name = self.name(short);
        let label = format!("logferry-test={}", self.run);
        let mut args = vec!["create", "--name", &name, "--label", &label];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
        let id = docker(&args);
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// Create and start; returns the ID.
    pub fn run(&self, short: &str, opts: &[&str], script: &str) -> String {
        let id = self.create(short, opts, script);
        docker(&["start", &id]);
        id
    }

    /// A container that only sleeps; write to its log with [`Containers::emit`].
    pub fn idle(&self, short: &str, opts: &[&str]) -> String {
        self.run(short, opts, "exec sleep 3600")
    }

    /// Run `script` inside the container with its output going to the container's own stdout (fd 1 of
    /// PID 1), i.e. into its log; `>&2` in the script goes to stderr.
    pub fn emit(&self, id: &str, script: &str) {
        let wrapped = format!("( {script} ) >/proc/1/fd/1 2>/proc/1/fd/2");
        docker(&["exec", id, "sh", "-c", &wrapped]);
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        for chunk in ids.chunks(50) {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(chunk.iter().map(String::as_str));
            let _ = Command::new("docker").args(&args).output();
        }
    }
}

/// A logferry config with one `docker_sd_configs` job (`docker`) for the containers of `run`: labels
/// `container` (the name without `/`) and `stream`, then `extra_relabel` (YAML list items, indented 6),
/// then `extra_scrape` (keys of the scrape config, indented 4). Positions sync every 200 ms; the
/// daemon is re-listed every `refresh`.
pub struct DockerConfig {
    pub host: String,
    pub run: String,
    pub refresh: String,
    pub extra_relabel: String,
    pub extra_scrape: String,
    pub top: String,
}

impl DockerConfig {
    pub fn new(run: &str) -> Self {
        DockerConfig {
            host: format!("unix://{SOCKET}"),
            run: run.to_owned(),
            refresh: "5s".into(),
            extra_relabel: String::new(),
            extra_scrape: String::new(),
            top: String::new(),
        }
    }

    pub fn write(&self, dir: &TestDir, loki_url: &str) -> PathBuf {
        let root = dir.path().display();
        let yaml = format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
             positions:\n  filename: {root}/positions.yaml\n  sync_period: 200ms\n\
             clients:\n  - url: {loki_url}\n    batchwait: 100ms\n    backoff_config:\n      \
             min_period: 50ms\n      max_period: 500ms\n{top}\
             scrape_configs:\n  - job_name: docker\n    docker_sd_configs:\n      - host: {host}\n        \
             refresh_interval: {refresh}\n        filters:\n          - name: label\n            \
             values: [logferry-test={run}]\n    relabel_configs:\n      \
             - source_labels: [__meta_docker_container_name]\n        regex: '/(.*)'\n        \
             target_label: container\n      - source_labels: [__meta_docker_container_log_stream]\n        \
             target_label: stream\n{relabel}{scrape}",
            top = self.top,
            host = self.host,
            refresh = self.refresh,
            run = self.run,
            relabel = self.extra_relabel,
            scrape = self.extra_scrape,
        );
        dir.write_config(&yaml)
    }
}

/// A unix socket that forwards every connection to the Docker daemon's, and can go down (connections
/// cut, socket file removed) and come back, as the daemon's socket does when it restarts.
pub struct SocketProxy {
    path: PathBuf,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<UnixStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl SocketProxy {
    pub fn start(path: &Path) -> Self {
        let mut p = SocketProxy {
            path: path.to_owned(),
            up: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
            acceptor: None,
        };
        p.bring_up();
        p
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    pub fn bring_up(&mut self) {
        let listener = UnixListener::bind(&self.path).expect("bind the proxy socket");
        listener.set_nonblocking(true).unwrap();
        self.up.store(true, Ordering::SeqCst);
        let (up, conns) = (self.up.clone(), self.conns.clone());
        self.acceptor = Some(std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => forward(client, &conns),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        }));
    }

    /// Cut every connection and remove the socket, like a daemon that went away.
    pub fn bring_down(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let _ = std::fs::remove_file(&self.path);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        self.bring_down();
    }
}

/// `tcp://127.0.0.1:<port>` in front of the daemon's unix socket, for as long as it lives.
pub struct TcpProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpProxy {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let acceptor = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(daemon) = UnixStream::connect(SOCKET) else {
                            continue;
                        };
                        pipe(client.try_clone().unwrap(), daemon.try_clone().unwrap());
                        pipe(daemon, client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TcpProxy {
            port,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// Copy bytes one way until either side closes; then close the other's writing half.
fn pipe<R, W>(mut from: R, mut to: W)
where
    R: Read + Send + 'static,
    W: Write + Shutdown + Send + 'static,
{
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        to.shutdown_write();
    });
}

/// Both stream kinds the proxies forward between.
pub trait Shutdown {
    fn shutdown_write(&self);
}

impl Shutdown for UnixStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Shutdown for std::net::TcpStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

fn forward(client: UnixStream, conns: &Arc<Mutex<Vec<UnixStream>>>) {
    let _ = client.set_nonblocking(false);
    let Ok(daemon) = UnixStream::connect(SOCKET) else {
        return;
    };
    {
        let mut all = conns.lock().unwrap();
        all.push(client.try_clone().unwrap());
        all.push(daemon.try_clone().unwrap());
    }
    pipe(client.try_clone().unwrap(), daemon.try_clone().unwrap());
    pipe(daemon, client);
}
