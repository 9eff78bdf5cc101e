//! [`Journald`]: a real `systemd-journald` of the test's own, and [`fixture`] journal files.
//!
//! systemd is not PID 1 here, and the host's `/run/systemd/journal` and `/var/log/journal` must stay
//! untouched, so each journald runs in a private mount namespace (`unshare --mount`) where tmpfs
//! covers `/run` and `/var/log`, the test's temp dirs are bind-mounted at `/run/systemd/journal` (its
//! sockets) and `/var/log/journal` (its files: `Storage=persistent`, already "flushed" from `/run` as
//! after boot, so users' entries go to their own `user-<uid>.journal`), and the test's
//! `journald.conf` covers `/etc/systemd/journald.conf`. Nothing outside the temp dir changes, tests can run in parallel, and
//! dropping the value kills and reaps the daemon.
//!
//! Entries are written the ways a host writes them: [`Journald::send`] speaks journald's native
//! protocol to its socket (custom fields, binary-safe values), and [`Journald::in_namespace`] runs
//! `systemd-cat`, `logger` or `journalctl --rotate` where `/run/systemd/journal` is this journald.
//! `tests/setup.sh` installs what this needs (systemd, systemd-journal-remote, util-linux, xz-utils).

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const JOURNALD: &str = "/lib/systemd/systemd-journald";
pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// journald.conf for tests: persistent storage in the temp dir, no rate limit, no kernel log, no
/// forwarding.
const BASE_CONF: &str =
    "[Journal]\nStorage=persistent\nReadKMsg=no\nRateLimitBurst=0\nRateLimitIntervalSec=0\n\
ForwardToSyslog=no\nForwardToWall=no\nForwardToConsole=no\nForwardToKMsg=no\nAudit=no\n";

pub struct Journald {
    dir: TempDir,
    child: Child,
}

impl Journald {
    pub fn start() -> Journald {
        Self::start_with("")
    }

    /// Starts journald with `extra` appended to the `[Journal]` section of its config.
    pub fn start_with(extra: &str) -> Journald {
        assert!(
            Path::new(JOURNALD).exists(),
            "{JOURNALD} is missing: run tests/setup.sh"
        );
        let dir = tempfile::Builder::new()
            .prefix("logferry-journald-")
            .tempdir()
            .expect("temp dir for journald");
        let root = dir.path();
        for sub in ["run", "log"] {
            std::fs::create_dir(root.join(sub)).expect("journald dirs");
        }
        std::fs::write(root.join("journald.conf"), format!("{BASE_CONF}{extra}\n"))
            .expect("journald.conf");
        // As after boot's `journalctl --flush`: write to /var/log/journal from the start.
        std::fs::write(root.join("run/flushed"), "").expect("flushed marker");
        let script = format!(
            "set -e\n\
             mount --make-rprivate /\n\
             mount -t tmpfs tmpfs /run\n\
             mount -t tmpfs tmpfs /var/log\n\
             mkdir -p /run/systemd/journal /var/log/journal\n\
             mount --bind '{r}/run' /run/systemd/journal\n\
             mount --bind '{r}/log' /var/log/journal\n\
             mount --bind '{r}/journald.conf' /etc/systemd/journald.conf\n\
             exec {JOURNALD}\n",
            r = root.display()
        );
        let child = Command::new("unshare")
            .args(["--mount", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn unshare + systemd-journald");
        let mut journald = Journald { dir, child };
        journald.wait_ready();
        journald
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.socket().exists() && self.active_file().is_some() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("systemd-journald exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "systemd-journald did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The directory the agent reads (`journal: {path: …}`); journald writes into its machine-id
    /// subdirectory.
    pub fn journal_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// The machine-id subdirectory holding the files.
    pub fn files_dir(&self) -> PathBuf {
        let log = self.journal_dir();
        std::fs::read_dir(&log)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path())
            .unwrap_or(log)
    }

    fn active_file(&self) -> Option<PathBuf> {
        let f = self.files_dir().join("system.journal");
        f.exists().then_some(f)
    }

    /// The journal files, active and archived.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.files_dir())
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "journal"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/socket")
    }

    /// Writes one entry over the native protocol; values may hold newlines or any bytes.
    pub fn send(&self, fields: &[(&str, &[u8])]) {
        let sock = UnixDatagram::unbound().expect("datagram socket");
        set_send_buffer(&sock, 4 << 20);
        sock.send_to(&native_datagram(fields), self.socket())
            .unwrap_or_else(|e| panic!("send to journald: {e}"));
    }

    /// Writes `MESSAGE=<line>` entries with `SYSLOG_IDENTIFIER=<ident>` and the `extra` fields.
    pub fn send_lines<S: AsRef<str>>(&self, ident: &str, lines: &[S], extra: &[(&str, &str)]) {
        let sock = UnixDatagram::unbound().expect("datagram socket");
        for line in lines {
            let mut fields: Vec<(&str, &[u8])> = vec![
                ("MESSAGE", line.as_ref().as_bytes()),
                ("SYSLOG_IDENTIFIER", ident.as_bytes()),
            ];
            fields.extend(extra.iter().map(|(k, v)| (*k, v.as_bytes())));
            let datagram = native_datagram(&fields);
            // A full socket buffer (journald busy) is waited out.
            loop {
                match sock.send_to(&datagram, self.socket()) {
                    Ok(_) => break,
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(e) => panic!("send to journald: {e}"),
                }
            }
        }
    }

    /// A command that runs inside this journald's mount namespace (`systemd-cat`, `logger`,
    /// `journalctl --rotate` then talk to it).
    pub fn in_namespace(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount=/proc/{}/ns/mnt", self.child.id()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `cmd` to completion, panicking on failure.
    pub fn run(&self, cmd: &mut Command) -> Output {
        let out = cmd.output().expect("run command");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `journalctl --sync`: everything sent so far is written to the files.
    pub fn sync(&self) {
        self.run(self.in_namespace("journalctl").arg("--sync"));
    }

    /// `journalctl --rotate`: the active file is archived and a new one started.
    pub fn rotate(&self) {
        self.run(self.in_namespace("journalctl").arg("--rotate"));
    }

    /// `journalctl --vacuum-files=<keep>` on the files directly: archived files beyond `keep` are deleted.
    pub fn vacuum_files(&self, keep: usize) {
        self.run(
            Command::new("journalctl")
                .arg(format!("--directory={}", self.files_dir().display()))
                .arg(format!("--vacuum-files={keep}")),
        );
    }

    /// `journalctl --directory=<dir> <args>` (read-only queries, e.g. the oracle for matches).
    pub fn journalctl(&self, args: &[&str]) -> String {
        let out = self.run(
            Command::new("journalctl")
                .arg(format!("--directory={}", self.journal_dir().display()))
                .args(args),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The cursor of the last entry matching `matches` (journalctl syntax).
    pub fn last_cursor(&self, matches: &[&str]) -> Option<String> {
        let mut args = vec!["-o", "export", "-n", "1", "--no-pager"];
        args.extend_from_slice(matches);
        self.journalctl(&args)
            .lines()
            .find_map(|l| l.strip_prefix("__CURSOR=").map(str::to_owned))
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn set_send_buffer(sock: &UnixDatagram, bytes: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on our own socket with a live i32.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const i32).cast(),
            4,
        );
    }
}

/// journald's native protocol: `NAME=value\n`, or `NAME\n<le64 length><value>\n` for values with a
/// newline or other bytes.
pub fn native_datagram(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut d = Vec::new();
    for (name, value) in fields {
        d.extend_from_slice(name.as_bytes());
        if value.contains(&b'\n') {
            d.push(b'\n');
            d.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            d.push(b'=');
        }
        d.extend_from_slice(value);
        d.push(b'\n');
    }
    d
}

/// Journal files made at test time from export-format entries, with chosen compression.
pub mod fixture {
    use super::*;

    /// How the large fields of a fixture file are stored.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Compression {
        None,
        Xz,
        Lz4,
        /// What journal-remote writes by itself on this system (systemd 252, Debian).
        Zstd,
    }

    /// One entry in export format: `__REALTIME_TIMESTAMP` (µs) and `NAME=value` fields.
    pub fn export_entry(realtime_usec: u64, seqnum: u64, fields: &[(&str, &str)]) -> String {
        let mut e = format!(
            "__CURSOR=s=0;i={seqnum:x}\n__REALTIME_TIMESTAMP={realtime_usec}\n\
             __MONOTONIC_TIMESTAMP={seqnum}\n_BOOT_ID=4cb184da5ffd406bbe91314565e2d24f\n"
        );
        for (k, v) in fields {
            e.push_str(&format!("{k}={v}\n"));
        }
        e.push('\n');
        e
    }

    /// Writes `export` (export format) to the journal file `out` with `systemd-journal-remote`, then
    /// stores its large fields with `compression`. systemd 252's journal-remote compresses with zstd
    /// only, so xz and lz4 files are made from an uncompressed one: each large DATA object's payload is
    /// compressed in place (it only shrinks), and the object and file headers get the flags sd-journal
    /// reads. Readers find objects by offset, so the space freed at the end of an object is never read.
    pub fn write(out: &Path, export: &str, compression: Compression, compact: bool) {
        assert!(
            Path::new(JOURNAL_REMOTE).exists(),
            "{JOURNAL_REMOTE} is missing: run tests/setup.sh"
        );
        let mut cmd = Command::new(JOURNAL_REMOTE);
        cmd.arg(format!("--output={}", out.display()))
            .arg(format!(
                "--compress={}",
                if compression == Compression::Zstd {
                    "yes"
                } else {
                    "no"
                }
            ))
            .arg("-")
            .env("SYSTEMD_JOURNAL_COMPACT", if compact { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn systemd-journal-remote");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(export.as_bytes())
            .expect("write export");
        let status = child.wait_with_output().expect("journal-remote");
        assert!(
            status.status.success(),
            "journal-remote: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        match compression {
            Compression::None | Compression::Zstd => {}
            Compression::Xz | Compression::Lz4 => compress_in_place(out, compression),
        }
    }

    const HEADER_INCOMPATIBLE_COMPRESSED_XZ: u32 = 1 << 0;
    const HEADER_INCOMPATIBLE_COMPRESSED_LZ4: u32 = 1 << 1;
    const HEADER_INCOMPATIBLE_COMPACT: u32 = 1 << 4;
    const OBJECT_COMPRESSED_XZ: u8 = 1 << 0;
    const OBJECT_COMPRESSED_LZ4: u8 = 1 << 1;
    const OBJECT_DATA: u8 = 1;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// See [`write`]. Layout from systemd's `journal-def.h`.
    fn compress_in_place(path: &Path, compression: Compression) {
        let mut b = std::fs::read(path).expect("read journal file");
        assert_eq!(&b[..8], b"LPKSHHRH", "not a journal file");
        let incompatible = u32_at(&b, 12);
        let header_size = u64_at(&b, 88) as usize;
        let arena_size = u64_at(&b, 96) as usize;
        // DataObject's payload follows 6 le64 (and 2 le32 in compact files) after the object header.
        let payload_at = if incompatible & HEADER_INCOMPATIBLE_COMPACT != 0 {
            72
        } else {
            64
        };
        let (flag, header_flag) = match compression {
            Compression::Xz => (OBJECT_COMPRESSED_XZ, HEADER_INCOMPATIBLE_COMPRESSED_XZ),
            _ => (OBJECT_COMPRESSED_LZ4, HEADER_INCOMPATIBLE_COMPRESSED_LZ4),
        };
        let mut at = header_size;
        let mut compressed = 0;
        while at < header_size + arena_size {
            let size = u64_at(&b, at + 8) as usize;
            if size == 0 {
                break;
            }
            if b[at] == OBJECT_DATA && b[at + 1] == 0 && size > payload_at + 512 {
                let payload = b[at + payload_at..at + size].to_vec();
                let packed = match compression {
                    Compression::Xz => xz(&payload),
                    _ => lz4_blob(&payload),
                };
                if packed.len() < payload.len() {
                    b[at + payload_at..at + payload_at + packed.len()].copy_from_slice(&packed);
                    b[at + 8..at + 16]
                        .copy_from_slice(&((payload_at + packed.len()) as u64).to_le_bytes());
                    b[at + 1] = flag;
                    compressed += 1;
                }
            }
            at += (size + 7) & !7;
        }
        assert!(compressed > 0, "no field large enough to compress");
        b[12..16].copy_from_slice(&(incompatible | header_flag).to_le_bytes());
        std::fs::write(path, b).expect("write journal file");
    }

    /// An xz stream, as sd-journal's `compress_blob_xz` writes it.
    fn xz(data: &[u8]) -> Vec<u8> {
        let mut child = Command::new("xz")
            .args(["--format=xz", "--check=none", "-c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("xz (xz-utils)");
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    /// sd-journal's lz4 blob: the uncompressed size as le64, then one LZ4 block.
    fn lz4_blob(data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u64).to_le_bytes().to_vec();
        lz4_block(data, &mut out);
        out
    }

    /// A greedy LZ4 block compressor (the format is LZ4's `lz4_Block_format.md`): 4-byte matches found
    /// through a hash table, the last 5 bytes always literals and no match starting in the last 12.
    fn lz4_block(src: &[u8], out: &mut Vec<u8>) {
        fn length(out: &mut Vec<u8>, mut n: usize) {
            while n >= 255 {
                out.push(255);
                n -= 255;
            }
            out.push(n as u8);
        }
        fn sequence(out: &mut Vec<u8>, literals: &[u8], matched: Option<(u16, usize)>) {
            let lit = literals.len();
            let ml = matched.map_or(0, |(_, len)| len - 4);
            out.push(((lit.min(15) as u8) << 4) | ml.min(15) as u8);
            if lit >= 15 {
                length(out, lit - 15);
            }
            out.extend_from_slice(literals);
            if let Some((offset, _)) = matched {
                out.extend_from_slice(&offset.to_le_bytes());
                if ml >= 15 {
                    length(out, ml - 15);
                }
            }
        }
        let mut table = vec![usize::MAX; 1 << 12];
        let (mut anchor, mut i) = (0, 0);
        let match_limit = src.len().saturating_sub(12);
        while i < match_limit {
            let word = u32::from_le_bytes(src[i..i + 4].try_into().unwrap());
            let h = (word.wrapping_mul(2_654_435_761) >> 20) as usize;
            let candidate = std::mem::replace(&mut table[h], i);
            if candidate != usize::MAX
                && i - candidate <= 65_535
                && src[candidate..candidate + 4] == src[i..i + 4]
            {
                let mut len = 4;
                while i + len < src.len() - 5 && src[candidate + len] == src[i + len] {
                    len += 1;
                }
                sequence(out, &src[anchor..i], Some(((i - candidate) as u16, len)));
                i += len;
                anchor = i;
            } else {
                i += 1;
            }
        }
        sequence(out, &src[anchor..], None);
    }
}
