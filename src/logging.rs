//! The agent's own log: logfmt (Promtail's default, `level=info ts=… msg="…" key=value`) or JSON, per
//! `server.log_format`, at `server.log_level`, on stderr. `LOGFERRY_LOG` (an `EnvFilter` directive)
//! overrides the level per module for debugging.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};
use crate::sink::stdout::format_rfc3339_nanos;

pub fn init(cfg: &Config) {
    let level = cfg.server.log_level.as_str();
    let filter = EnvFilter::try_from_env("LOGFERRY_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},hyper=warn,reqwest=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match cfg.server.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Logfmt => builder.event_format(Logfmt).try_init(),
    };
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
