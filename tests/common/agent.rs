//! [`Agent`]: the real `logferry` binary under test, as a child process.
//!
//! Its stdout and stderr are drained by one thread each, line by line (ANSI colours stripped), into
//! `stdout.log` / `stderr.log` in a temp dir and into memory, where [`Agent::wait_for_log`] watches
//! them without polling. Dropping an `Agent` kills and reaps the process, so a failing test leaks
//! nothing; if the test is panicking, the agent's output is printed to help the post-mortem.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Which pipe a captured line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How to start the agent. `Clone` so a test can start the same agent again after killing it.
#[derive(Clone, Debug)]
pub struct AgentBuilder {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    current_dir: Option<PathBuf>,
    stdin: bool,
    /// `RLIMIT_NOFILE` (soft and hard) of the agent.
    max_open_files: Option<u64>,
}

impl Default for AgentBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentBuilder {
    pub fn new() -> Self {
        AgentBuilder {
            program: PathBuf::from(env!("CARGO_BIN_EXE_logferry")),
            args: Vec::new(),
            envs: Vec::new(),
            current_dir: None,
            stdin: false,
            max_open_files: None,
        }
    }

    /// Runs another program instead of `logferry` (the harness's own tests use `/bin/sh`).
    pub fn program(mut self, program: impl AsRef<Path>) -> Self {
        self.program = program.as_ref().to_owned();
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds `-config.file=<path>`, Promtail's flag.
    pub fn config_file(self, path: impl AsRef<Path>) -> Self {
        let mut arg = OsString::from("-config.file=");
        arg.push(path.as_ref());
        self.arg(arg)
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        let value = Some(value.as_ref().to_owned());
        self.envs.push((key.as_ref().to_owned(), value));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.as_ref().to_owned(), None));
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.current_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Gives the agent a stdin pipe (for `-stdin`); otherwise stdin is `/dev/null`.
    pub fn stdin_piped(mut self) -> Self {
        self.stdin = true;
        self
    }

    /// Runs the agent with at most `n` open files (soft and hard limit, as `ulimit -n n` sets them).
    pub fn max_open_files(mut self, n: u64) -> Self {
        self.max_open_files = Some(n);
        self
    }

    /// Starts the agent. Panics if it cannot be spawned.
    pub fn spawn(&self) -> Agent {
        let log_dir = tempfile::Builder::new()
            .prefix("logferry-agent-")
            .tempdir()
            .expect("temp dir for agent logs");
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(if self.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.envs {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        if let Some(n) = self.max_open_files {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: n as libc::rlim_t,
                rlim_max: n as libc::rlim_t,
            };
            // SAFETY: only setrlimit, which is async-signal-safe, between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.program.display()));

        let output = Arc::new(Output::default());
        let drains = vec![
            drain(
                child.stdout.take().expect("piped stdout"),
                Stream::Stdout,
                log_dir.path().join("stdout.log"),
                Arc::clone(&output),
            ),
            drain(
                child.stderr.take().expect("piped stderr"),
                Stream::Stderr,
                log_dir.path().join("stderr.log"),
                Arc::clone(&output),
            ),
        ];
        Agent {
            stdin: child.stdin.take(),
            child,
            status: None,
            output,
            drains,
            log_dir,
        }
    }

    /// Runs the agent to completion (e.g. `-check-syntax`, `-version`). Panics after `timeout`.
    pub fn run(&self, timeout: Duration) -> Finished {
        let mut agent = self.spawn();
        let status = agent
            .wait(timeout)
            .unwrap_or_else(|| panic!("agent still running after {timeout:?}"));
        agent.join_drains();
        Finished {
            status,
            stdout: agent.stdout(),
            stderr: agent.stderr(),
        }
    }
}

/// The result of [`AgentBuilder::run`].
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Captured output, shared with the drain threads.
#[derive(Default)]
struct Output {
    lines: Mutex<Vec<(Stream, String)>>,
    grew: Condvar,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, Vec<(Stream, String)>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running `logferry`. Dropping it sends SIGKILL and reaps the process.
pub struct Agent {
    child: Child,
    stdin: Option<ChildStdin>,
    status: Option<ExitStatus>,
    output: Arc<Output>,
    drains: Vec<JoinHandle<()>>,
    log_dir: TempDir,
}

impl Agent {
    /// Starts the binary with these arguments; see [`AgentBuilder`] for env and the rest.
    pub fn spawn<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I) -> Agent {
        AgentBuilder::new().args(args).spawn()
    }

    pub fn builder() -> AgentBuilder {
        AgentBuilder::new()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where `stdout.log` and `stderr.log` are written.
    pub fn log_dir(&self) -> &Path {
        self.log_dir.path()
    }

    // ---- lifecycle ----

    /// Sends a signal (`libc::SIGHUP`, …) unless the process was already reaped.
    pub fn signal(&self, signal: i32) {
        if self.status.is_none() {
            // SAFETY: kill(2) with our own child's pid; it is not reaped, so the pid is still ours.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, signal);
            }
        }
    }

    /// SIGHUP: Promtail's config reload.
    pub fn reload(&self) {
        self.signal(libc::SIGHUP);
    }

    /// `kill -9`, then reaps; returns the exit status (signal 9, or how it had already exited).
    pub fn kill(&mut self) -> ExitStatus {
        self.signal(libc::SIGKILL);
        self.wait(Duration::from_secs(30))
            .expect("a SIGKILLed agent exits")
    }

    /// SIGTERM, then waits up to `timeout` for a graceful exit. `None` if it is still running (the
    /// test decides; Drop will SIGKILL it).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        self.wait(timeout)
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status if it has exited (reaping it), else `None`.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait on the agent");
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    // ---- stdin ----

    /// Writes to the agent's stdin (needs [`AgentBuilder::stdin_piped`]).
    pub fn write_stdin(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin not piped or closed");
        stdin.write_all(data).expect("write agent stdin");
        stdin.flush().expect("flush agent stdin");
    }

    /// Closes stdin: EOF for `-stdin` mode.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    // ---- output ----

    /// Every captured line of stdout and stderr, in the order the drain threads read them.
    pub fn logs(&self) -> String {
        join_lines(self.output.lock().iter().map(|(_, l)| l.as_str()))
    }

    pub fn stdout(&self) -> String {
        self.stream(Stream::Stdout)
    }

    pub fn stderr(&self) -> String {
        self.stream(Stream::Stderr)
    }

    fn stream(&self, which: Stream) -> String {
        let lines = self.output.lock();
        join_lines(
            lines
                .iter()
                .filter(|(s, _)| *s == which)
                .map(|(_, l)| l.as_str()),
        )
    }

    /// How many captured lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        let lines = self.output.lock();
        lines.iter().filter(|(_, l)| l.contains(needle)).count()
    }

    /// Waits until a line of stdout or stderr contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_log_count(needle, 1, timeout)
    }

    /// Waits until at least `n` lines contain `needle` (e.g. a second "listening" after a reload).
    pub fn wait_for_log_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        self.wait_for_line(timeout, |lines| {
            let count = lines.iter().filter(|(_, l)| l.contains(needle)).count();
            (count >= n).then_some(())
        })
        .is_some()
    }

    /// The HTTP server address from the first log line with `listening` and `addr=<ip>:<port>`
    /// (also `"addr":"…"` in JSON logs, or `listening on <ip>:<port>`). Waits up to 30 s; panics with
    /// the logs if none appears.
    pub fn http_addr(&self) -> SocketAddr {
        let found = self.wait_for_line(Duration::from_secs(30), |lines| {
            lines
                .iter()
                .filter(|(_, l)| l.contains("listening"))
                .find_map(|(_, l)| parse_listen_addr(l))
        });
        found.unwrap_or_else(|| {
            panic!(
                "the agent logged no `listening … addr=<ip>:<port>` line; logs:\n{}",
                self.logs()
            )
        })
    }

    /// The `address=<ip>:<port>` of the first log line `is_it` accepts (a receiving source saying where
    /// it listens). Waits up to 30 s; panics with the logs if none appears.
    pub fn logged_address(&self, is_it: impl Fn(&str) -> bool) -> SocketAddr {
        let found = self.wait_for_line(Duration::from_secs(30), |lines| {
            lines
                .iter()
                .filter(|(_, l)| is_it(l))
                .find_map(|(_, l)| addr_after(l, "address="))
        });
        found.unwrap_or_else(|| {
            panic!(
                "the agent logged no such `address=<ip>:<port>` line; logs:\n{}",
                self.logs()
            )
        })
    }

    /// Waits (up to `timeout`) until every sink's disk buffer holds nothing: each request was accepted
    /// or dead-lettered, so nothing can be sent again. What arrived by then is final, so an
    /// exactly-once count can follow (a fixed sleep would miss a duplicate sent later). Panics if
    /// no sink has a disk buffer (a memory buffer has no such gauge to wait on).
    pub fn wait_until_buffers_empty(&self, timeout: Duration) -> bool {
        let page = super::http::get(&format!("{}/metrics", self.http_url()))
            .expect("GET /metrics")
            .text();
        assert!(
            page.contains("logferry_buffer_records{"),
            "no disk buffer to wait on"
        );
        super::http::wait_for_metric(&self.http_url(), "logferry_buffer_records", timeout, |v| {
            v == 0.0
        })
    }

    pub fn http_port(&self) -> u16 {
        self.http_addr().port()
    }

    /// `http://<addr>` of the agent's HTTP server.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr())
    }

    /// Prints the captured output to the test's stderr.
    pub fn dump_logs(&self) {
        eprintln!(
            "----- logferry (pid {}) output -----\n{}----- end -----",
            self.child.id(),
            self.logs()
        );
    }

    /// Waits until `found` returns `Some` on the captured lines, re-checking as lines arrive.
    fn wait_for_line<T>(
        &self,
        timeout: Duration,
        mut found: impl FnMut(&[(Stream, String)]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lock();
        loop {
            if let Some(value) = found(&lines) {
                return Some(value);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self
                .output
                .grew
                .wait_timeout(lines, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// After exit: waits (bounded) for the drains to reach EOF so the output is complete.
    fn join_drains(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.drains.iter().any(|d| !d.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for drain in std::mem::take(&mut self.drains) {
            if drain.is_finished() {
                let _ = drain.join();
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stdin = None;
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        if std::thread::panicking() {
            self.join_drains();
            self.dump_logs();
        }
    }
}

/// Reads `pipe` line by line into `file` and `output` until EOF.
fn drain(
    pipe: impl Read + Send + 'static,
    which: Stream,
    path: PathBuf,
    output: Arc<Output>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("agent-{which:?}").to_lowercase())
        .spawn(move || {
            let mut file = File::create(&path).ok();
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if let Some(file) = file.as_mut() {
                    let _ = file.write_all(&buf);
                }
                let text = String::from_utf8_lossy(&buf);
                let line = strip_ansi(text.trim_end_matches(['\n', '\r']));
                output.lock().push((which, line));
                output.grew.notify_all();
            }
        })
        .expect("spawn an output drain thread")
}

fn join_lines<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Removes ANSI escape sequences (tracing colours field names when it thinks it may).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters and intermediates, then one final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// Finds `<ip>:<port>` after `addr=`, `"addr":` or `listening on ` in a log line.
pub fn parse_listen_addr(line: &str) -> Option<SocketAddr> {
    ["addr=", "\"addr\":", "listening on "]
        .iter()
        .find_map(|marker| addr_after(line, marker))
}

/// The `<ip>:<port>` right after `marker` in a log line (quoted or not).
fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let rest = rest.trim_start_matches([' ', '"']);
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '}')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
