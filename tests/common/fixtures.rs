//! Test data: a temp dir for configs and log files, deterministic numbered lines, and the
//! lost/duplicated count that every delivery test asserts on.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// A temp dir deleted on drop. Relative paths given to its methods are taken inside it.
pub struct TestDir {
    dir: TempDir,
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDir {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("logferry-test-")
            .tempdir()
            .expect("create a temp dir");
        TestDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` inside the dir (an absolute `rel` is returned as is).
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The dead-letter files beside the sinks' buffers under `<dir>/buffer/`.
    pub fn dead_letter_files(&self) -> Vec<PathBuf> {
        let Ok(dirs) = fs::read_dir(self.join("buffer")) else {
            return Vec::new();
        };
        let files = dirs.flatten().map(|d| d.path().join("dead-letter.ndjson"));
        files.filter(|p| p.exists()).collect()
    }

    /// Writes `config.yaml` and returns its path.
    pub fn write_config(&self, yaml: &str) -> PathBuf {
        self.write_file("config.yaml", yaml)
    }

    /// Writes (replaces) a file, creating parent dirs; returns its path.
    pub fn write_file(&self, rel: impl AsRef<Path>, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dirs");
        }
        fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Appends `lines`, each followed by `\n`, creating the file (and parents) if needed.
    pub fn append_lines<S: AsRef<str>>(&self, path: impl AsRef<Path>, lines: &[S]) -> PathBuf {
        let path = self.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dirs");
        }
        append_lines(&path, lines);
        path
    }
}

/// Appends `lines`, each followed by `\n`, in one write; creates the file if needed.
pub fn append_lines<S: AsRef<str>>(path: impl AsRef<Path>, lines: &[S]) {
    let path = path.as_ref();
    let mut text = String::new();
    for line in lines {
        text.push_str(line.as_ref());
        text.push('\n');
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for append: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

/// Line `n` of a numbered series: `prefix-000042 payload the quick brown fox …`.
pub fn numbered_line(prefix: &str, n: usize) -> String {
    format!("{prefix}-{n:06} payload the quick brown fox jumps over the lazy dog")
}

/// Lines `start..end` of a numbered series (see [`numbered_line`]).
pub fn lines_range(prefix: &str, start: usize, end: usize) -> Vec<String> {
    (start..end).map(|n| numbered_line(prefix, n)).collect()
}

/// How `received` differs from `expected`, as multisets of lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Expected occurrences that never arrived.
    pub lost: usize,
    /// Extra arrivals of expected lines.
    pub duplicated: usize,
    /// Arrivals of lines that were not expected at all.
    pub unexpected: usize,
}

impl Counts {
    /// Exactly once, nothing else.
    pub fn is_exact(&self) -> bool {
        *self == Counts::default()
    }
}

/// Compares what was written with what arrived, line by line, order ignored.
pub fn count_loss<E: AsRef<str>, R: AsRef<str>>(expected: &[E], received: &[R]) -> Counts {
    let mut balance: HashMap<&str, (usize, usize)> = HashMap::new();
    for line in expected {
        balance.entry(line.as_ref()).or_default().0 += 1;
    }
    for line in received {
        balance.entry(line.as_ref()).or_default().1 += 1;
    }
    let mut counts = Counts::default();
    for (want, got) in balance.into_values() {
        if want == 0 {
            counts.unexpected += got;
        } else if got < want {
            counts.lost += want - got;
        } else {
            counts.duplicated += got - want;
        }
    }
    counts
}

/// The Promtail config the end-to-end tests run the agent with: the HTTP server on
/// `127.0.0.1:<OS-chosen port>`, positions in `<dir>/positions.yaml` synced every 200 ms, one client
/// per URL (batchwait 100 ms, backoff 50 ms..500 ms), and one scrape config `app` (label `job: app`)
/// whose `__path__` is `<dir>/<glob>`. The `*_yaml` pieces are spliced in verbatim.
#[derive(Clone, Debug)]
pub struct TestConfig {
    urls: Vec<String>,
    glob: String,
    client_yaml: String,
    top_yaml: String,
    scrape_yaml: String,
    server_yaml: String,
}

impl TestConfig {
    /// One client pushing to `url`, tailing `logs/*.log`.
    pub fn new(url: impl Into<String>) -> Self {
        TestConfig {
            urls: vec![url.into()],
            glob: "logs/*.log".to_owned(),
            client_yaml: String::new(),
            top_yaml: String::new(),
            scrape_yaml: String::new(),
            server_yaml: String::new(),
        }
    }

    /// Adds a client pushing to `url` (with the same `client_yaml`).
    pub fn client(mut self, url: impl Into<String>) -> Self {
        self.urls.push(url.into());
        self
    }

    /// The `__path__` glob, relative to the test dir.
    pub fn glob(mut self, glob: &str) -> Self {
        self.glob = glob.to_owned();
        self
    }

    /// More keys for every client, indented by 4 spaces (`"    tenant_id: t1\n"`).
    pub fn client_yaml(mut self, yaml: &str) -> Self {
        self.client_yaml.push_str(yaml);
        self
    }

    /// More top-level blocks (`"limits_config:\n  max_line_size: 1000\n"`).
    pub fn top_yaml(mut self, yaml: &str) -> Self {
        self.top_yaml.push_str(yaml);
        self
    }

    /// More keys for the `server` block, indented by 2 spaces (`"  graceful_shutdown_timeout: 2s\n"`).
    pub fn server_yaml(mut self, yaml: &str) -> Self {
        self.server_yaml.push_str(yaml);
        self
    }

    /// More keys for the scrape config, indented by 4 spaces (`"    pipeline_stages: []\n"`).
    pub fn scrape_yaml(mut self, yaml: &str) -> Self {
        self.scrape_yaml.push_str(yaml);
        self
    }

    /// The config text for `dir`.
    pub fn render(&self, dir: &TestDir) -> String {
        let root = dir.path().display();
        let mut yaml = format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n{server}\
             positions:\n  filename: {root}/positions.yaml\n  sync_period: 200ms\n\
             clients:\n",
            server = self.server_yaml
        );
        for url in &self.urls {
            yaml.push_str(&format!(
                "  - url: {url}\n    batchwait: 100ms\n    backoff_config:\n      \
                 min_period: 50ms\n      max_period: 500ms\n"
            ));
            yaml.push_str(&self.client_yaml);
        }
        yaml.push_str("target_config:\n  sync_period: 1s\n");
        yaml.push_str(&self.top_yaml);
        yaml.push_str(&format!(
            "scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [localhost]\n        \
             labels:\n          job: app\n          __path__: {root}/{glob}\n",
            glob = self.glob
        ));
        yaml.push_str(&self.scrape_yaml);
        yaml
    }

    /// Writes `<dir>/config.yaml`, creates `<dir>/logs/`, and returns the config's path.
    pub fn write(&self, dir: &TestDir) -> PathBuf {
        fs::create_dir_all(dir.join("logs")).expect("create the logs dir");
        dir.write_config(&self.render(dir))
    }
}

/// Starts `logferry -config.file=<config>` and waits (30 s) until it logged `logferry started`.
pub fn start_agent(config: &Path) -> super::Agent {
    let agent = super::Agent::builder().config_file(config).spawn();
    assert!(
        agent.wait_for_log("logferry started", std::time::Duration::from_secs(30)),
        "the agent did not start; logs:\n{}",
        agent.logs()
    );
    agent
}

/// The openssl CLI makes a CA, a server certificate for 127.0.0.1 and a client certificate.
pub fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=logferry test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ];
    ca.extend(ec);
    run(&ca);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        let (key, csr, crt, ext) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.crt"),
            format!("{who}.ext"),
        );
        let subj = format!("/CN={who}");
        let mut req = vec!["req", "-subj", &subj, "-keyout", &key, "-out", &csr];
        req.extend(ec);
        run(&req);
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ]);
    }
}
