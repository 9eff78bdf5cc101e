//! The agent's own log: logfmt (Promtail's default, `level=info ts=… msg="…" key=value`) or JSON, per
//! `server.log_format`, at `server.log_level`, on stderr. `LOGFERRY_LOG` (an `EnvFilter` directive)
//! overrides the level per module for debugging.
//!
//! Two guards sit between every event and stderr, whatever the format:
//!
//! * **Repeats are held back.** A warning or error that repeats (same place, same message, same text
//!   in its fields: a dead receiver, an unreadable file) is written once per [`REPEAT_WINDOW`]; the
//!   next one written after the window carries `repeated=N`, the number held back since the last.
//!   Lines that differ only in numbers (attempt counts, sizes) count as repeats.
//! * **Credentials never reach the log.** `user:password@` in any URL, in the message or any field
//!   (an HTTP client's error quotes the URL it failed on), is written `<secret>@`. Passwords, tokens
//!   and keys from the config are never put into events in the first place; this catches what an
//!   error message from a library may quote.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};
use crate::entry::format_rfc3339_nanos;

/// A repeating warning or error is written at most once per window.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// Distinct repeating events remembered; past it the oldest windows are forgotten.
const REPEATS_KEPT: usize = 4096;

pub fn init(cfg: &Config) {
    let level = cfg.server.log_level.as_str();
    let filter = EnvFilter::try_from_env("LOGFERRY_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},hyper=warn,reqwest=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match cfg.server.log_format {
        LogFormat::Json => {
            let json = tracing_subscriber::fmt::format().json().flatten_event(true);
            builder
                .event_format(Guarded::new(json, Style::Json))
                .try_init()
        }
        LogFormat::Logfmt => builder
            .event_format(Guarded::new(Logfmt, Style::Logfmt))
            .try_init(),
    };
}

/// How a formatted line ends, to add `repeated=N` to it.
#[derive(Clone, Copy)]
enum Style {
    Logfmt,
    Json,
}

/// Wraps a line format with the two guards of the module doc.
struct Guarded<F> {
    inner: F,
    style: Style,
    repeats: Repeats,
}

impl<F> Guarded<F> {
    fn new(inner: F, style: Style) -> Self {
        Guarded {
            inner,
            style,
            repeats: Repeats::new(REPEAT_WINDOW),
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for Guarded<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut repeated = 0;
        if *event.metadata().level() <= tracing::Level::WARN {
            match self.repeats.admit(event, Instant::now()) {
                Some(held) => repeated = held,
                None => return Ok(()),
            }
        }
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let mut line = scrub_credentials(&line).into_owned();
        if repeated > 0 {
            let end = match self.style {
                Style::Logfmt => line.trim_end_matches('\n').len(),
                Style::Json => line.trim_end().trim_end_matches('}').len(),
            };
            line.truncate(end);
            match self.style {
                Style::Logfmt => line.push_str(&format!(" repeated={repeated}\n")),
                Style::Json => line.push_str(&format!(",\"repeated\":{repeated}}}\n")),
            }
        }
        writer.write_str(&line)
    }
}

/// The warnings and errors seen in their current window, by what makes them the same.
struct Repeats {
    window: Duration,
    seen: Mutex<HashMap<u64, Window>>,
}

struct Window {
    since: Instant,
    held: u64,
}

impl Repeats {
    fn new(window: Duration) -> Self {
        Repeats {
            window,
            seen: Mutex::default(),
        }
    }

    /// `Some(held)`: write the event, noting `held` repeats held back before it; `None`: hold it back.
    fn admit(&self, event: &Event<'_>, now: Instant) -> Option<u64> {
        let mut key = SameText::default();
        std::ptr::hash(event.metadata(), &mut key.hasher);
        event.record(&mut key);
        let key = key.hasher.finish();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= REPEATS_KEPT && !seen.contains_key(&key) {
            seen.retain(|_, w| now.duration_since(w.since) < self.window);
            if seen.len() >= REPEATS_KEPT {
                seen.clear();
            }
        }
        match seen.get_mut(&key) {
            Some(w) if now.duration_since(w.since) < self.window => {
                w.held += 1;
                None
            }
            Some(w) => {
                let held = w.held;
                *w = Window {
                    since: now,
                    held: 0,
                };
                Some(held)
            }
            None => {
                seen.insert(
                    key,
                    Window {
                        since: now,
                        held: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

/// Hashes an event's message and text fields; numbers and booleans are left out, so that lines that
/// differ only in an attempt count or a size are the same.
#[derive(Default)]
struct SameText {
    hasher: std::collections::hash_map::DefaultHasher,
}

impl Visit for SameText {
    fn record_str(&mut self, field: &Field, value: &str) {
        field.name().hash(&mut self.hasher);
        value.hash(&mut self.hasher);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        field.name().hash(&mut self.hasher);
        format!("{value:?}").hash(&mut self.hasher);
    }

    fn record_i64(&mut self, _: &Field, _: i64) {}
    fn record_u64(&mut self, _: &Field, _: u64) {}
    fn record_f64(&mut self, _: &Field, _: f64) {}
    fn record_bool(&mut self, _: &Field, _: bool) {}
}

/// Every URL in `text` through [`crate::config::redact_url`] (its password and secret query values as
/// `<secret>`), wherever it appears: an error may quote the URL it failed on.
pub fn scrub_credentials(text: &str) -> std::borrow::Cow<'_, str> {
    static URL: OnceLock<regex::Regex> = OnceLock::new();
    if !text.contains("://") {
        return text.into();
    }
    // A URL ends where a quoted or bracketed log value would: at a blank, quote, backslash (a JSON
    // escape) or bracket.
    let re = URL.get_or_init(|| {
        regex::Regex::new(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\\\x22'<>()\[\]{}]+")
            .expect("a valid regex")
    });
    let mut out = String::new();
    let mut copied = 0;
    for url in re.find_iter(text) {
        if let std::borrow::Cow::Owned(redacted) = crate::config::redact_url(url.as_str()) {
            out.push_str(&text[copied..url.start()]);
            out.push_str(&redacted);
            copied = url.end();
        }
    }
    if copied == 0 {
        return text.into();
    }
    out.push_str(&text[copied..]);
    out.into()
}

/// One event per line: `level=… ts=… caller=<module> msg="…" key=value …`, values quoted when needed.
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let level = meta.level().as_str().to_ascii_lowercase();
        let ts = format_rfc3339_nanos(crate::entry::now_nanos());
        write!(writer, "level={level} ts={ts} caller={}", meta.target())?;
        let mut v = Fields::default();
        event.record(&mut v);
        write!(writer, " msg=")?;
        write_value(&mut writer, &v.message)?;
        for (k, val) in &v.fields {
            write!(writer, " {k}=")?;
            write_value(&mut writer, val)?;
        }
        writeln!(writer)
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.push((field.name(), text));
        }
    }
}

fn write_value(w: &mut Writer<'_>, v: &str) -> fmt::Result {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c > ' ' && c != '"' && c != '=' && c != '\\' && !c.is_control());
    if plain {
        return w.write_str(v);
    }
    let mut out = String::with_capacity(v.len() + 2);
    crate::entry::go_quote(&mut out, v);
    w.write_str(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_scrubbed_wherever_they_are() {
        let line = r#"msg="error sending request for url (http://shipper:hunter2@loki:3100/loki/api/v1/push)" url=https://u:p%40ss@es.example/_bulk"#;
        let out = scrub_credentials(line);
        assert!(!out.contains("hunter2") && !out.contains("p%40ss"), "{out}");
        assert!(out.contains("http://shipper:<secret>@loki:3100/"), "{out}");
        assert!(out.contains("https://u:<secret>@es.example/_bulk"), "{out}");
        let line = r#"{"error":"error sending request for url (http://loki/push?api_key=k1&x=1): refused","to":"http://es/?token=k2\"}"#;
        let out = scrub_credentials(line);
        assert!(!out.contains("k1") && !out.contains("k2"), "{out}");
        assert!(
            out.contains("(http://loki/push?api_key=<secret>&x=1): refused"),
            "{out}"
        );
        // No credentials: unchanged, not copied.
        let plain = "user@example.com wrote to http://loki:3100/push";
        assert!(matches!(
            scrub_credentials(plain),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    /// Captures what the subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `emit` with a subscriber writing through `Guarded<inner>` into `writer`.
    fn run_with<F>(inner: F, style: Style, window: Duration, writer: Capture, emit: impl FnOnce())
    where
        F: FormatEvent<
                tracing_subscriber::Registry,
                tracing_subscriber::fmt::format::DefaultFields,
            > + Send
            + Sync
            + 'static,
    {
        let mut guarded = Guarded::new(inner, style);
        guarded.repeats = Repeats::new(window);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(guarded)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
    }

    fn logged(style: Style, window: Duration, emit: impl FnOnce()) -> Vec<String> {
        let out = Capture::default();
        let writer = out.clone();
        match style {
            Style::Logfmt => run_with(Logfmt, style, window, writer, emit),
            Style::Json => {
                let json = tracing_subscriber::fmt::format().json().flatten_event(true);
                run_with(json, style, window, writer, emit)
            }
        }
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn repeated_warnings_are_held_back_then_counted() {
        for style in [Style::Logfmt, Style::Json] {
            let lines = logged(style, Duration::from_millis(200), || {
                // One place in the code, as a retry loop has it.
                let refused = |attempt: u32| {
                    tracing::warn!(attempt, error = "connection refused", "push failed");
                };
                for attempt in 0..5 {
                    refused(attempt);
                }
                tracing::warn!(error = "timed out", "push failed");
                tracing::info!("information is never held back");
                tracing::info!("information is never held back");
                std::thread::sleep(Duration::from_millis(250));
                refused(9);
            });
            let refused: Vec<&String> = lines.iter().filter(|l| l.contains("refused")).collect();
            assert_eq!(refused.len(), 2, "{lines:#?}");
            assert!(!refused[0].contains("repeated"), "{lines:#?}");
            let count = match style {
                Style::Logfmt => "repeated=4",
                Style::Json => "\"repeated\":4}",
            };
            assert!(refused[1].contains(count), "{lines:#?}");
            if let Style::Json = style {
                let _: serde_json::Value = serde_json::from_str(refused[1]).expect("still JSON");
            }
            assert_eq!(lines.iter().filter(|l| l.contains("timed out")).count(), 1);
            assert_eq!(lines.iter().filter(|l| l.contains("never held")).count(), 2);
        }
    }

    #[test]
    fn no_format_writes_credentials() {
        for style in [Style::Logfmt, Style::Json] {
            let lines = logged(style, REPEAT_WINDOW, || {
                tracing::error!(
                    error = "error sending request for url (http://a:hunter2@h/push)",
                    url = "https://b:s3cret@es:9200",
                    "request failed"
                );
            });
            assert_eq!(lines.len(), 1);
            assert!(
                !lines[0].contains("hunter2") && !lines[0].contains("s3cret"),
                "{}",
                lines[0]
            );
        }
    }
}
