//! `timestamp`: set the entry's timestamp from an extracted value
//! (Promtail `stages/timestamp.go`, docs "timestamp stage").
//!
//! `format` is a named format (`RFC3339`, `Unix`, ...), or a Go reference layout such as
//! `2006-01-02 15:04:05.000` ([`layout`]). `fallback_formats` are tried in order when `format` fails.
//! `location` (an IANA zone) applies to custom layouts only, as in Promtail. A custom layout without a
//! year (`Jan _2 15:04:05`) gets the current year, or the previous one for a December timestamp read
//! in January, or the next one for a January timestamp read in December.
//!
//! When the source is missing or does not parse, `action_on_failure: skip` keeps the read time and
//! `fudge` (the default) uses the last timestamp parsed for the same label set plus one nanosecond,
//! so that lines keep their order in Loki. The last timestamps are kept for 10000 label sets per
//! pipeline, least recently used first out.
//!
//! Time zones come from the `jiff` crate: it reads the system zoneinfo as Go does, carries a bundled
//! copy for hosts without one (`tzdb-bundle-always`), knows each zone's abbreviations (Go matches
//! `MST` in a value against the location's abbreviations), and is maintained by the author of the
//! regex crate. `chrono-tz` would compile the database in with no system fallback and needs `chrono`.

pub mod layout;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use jiff::tz::TimeZone;
use serde::Deserialize;

use self::layout::{Layout, Parsed, Zone};
use crate::entry::labels_hash;
use crate::stage::value::value_to_string;
use crate::stage::{decode, Item, ItemLabels, Stage, StageFactory};

/// How many label sets `fudge` remembers (Promtail's `maxLastKnownTimestampsCacheSize`).
const FUDGE_CAPACITY: usize = 10_000;

#[derive(Deserialize)]
struct TimestampConfig {
    source: Option<String>,
    format: Option<String>,
    #[serde(default)]
    fallback_formats: Vec<String>,
    location: Option<String>,
    action_on_failure: Option<String>,
}

/// A format, ready to parse.
#[derive(Debug)]
enum Format {
    /// Seconds, with an optional fraction scaled by its number of digits.
    Unix,
    /// Integer milliseconds, microseconds or nanoseconds: the factor to nanoseconds.
    UnixScaled(i64),
    Layout {
        layout: Layout,
        /// The layout has neither `06` nor `2006`: the year comes from the clock.
        no_year: bool,
        location: Option<TimeZone>,
    },
}

/// Go's layout for a named format, with the named formats Promtail's docs list and Go's other
/// named layouts (`Kitchen`, `Stamp`...), which logferry also accepts.
fn named_layout(name: &str) -> Option<&'static str> {
    Some(match name {
        "ANSIC" => "Mon Jan _2 15:04:05 2006",
        "UnixDate" => "Mon Jan _2 15:04:05 MST 2006",
        "RubyDate" => "Mon Jan 02 15:04:05 -0700 2006",
        "RFC822" => "02 Jan 06 15:04 MST",
        "RFC822Z" => "02 Jan 06 15:04 -0700",
        "RFC850" => "Monday, 02-Jan-06 15:04:05 MST",
        "RFC1123" => "Mon, 02 Jan 2006 15:04:05 MST",
        "RFC1123Z" => "Mon, 02 Jan 2006 15:04:05 -0700",
        "RFC3339" => "2006-01-02T15:04:05Z07:00",
        "RFC3339Nano" => "2006-01-02T15:04:05.999999999Z07:00",
        "Layout" => "01/02 03:04:05PM '06 -0700",
        "Kitchen" => "3:04PM",
        "Stamp" => "Jan _2 15:04:05",
        "StampMilli" => "Jan _2 15:04:05.000",
        "StampMicro" => "Jan _2 15:04:05.000000",
        "StampNano" => "Jan _2 15:04:05.000000000",
        _ => return None,
    })
}

impl Format {
    fn new(spec: &str, location: Option<&TimeZone>) -> Format {
        match spec {
            "Unix" => return Format::Unix,
            "UnixMs" => return Format::UnixScaled(1_000_000),
            "UnixUs" => return Format::UnixScaled(1_000),
            "UnixNs" => return Format::UnixScaled(1),
            _ => {}
        }
        let (text, location) = match named_layout(spec) {
            Some(layout) => (layout, None),
            None => (spec, location.cloned()),
        };
        Format::Layout {
            layout: Layout::new(text),
            no_year: !text.contains("06"),
            location,
        }
    }

    /// Unix nanoseconds of `value`, or why it does not parse.
    fn parse(&self, value: &str) -> Result<i64, String> {
        match self {
            Format::Unix => parse_unix(value),
            Format::UnixScaled(factor) => go_parse_int(value)?
                .checked_mul(*factor)
                .ok_or_else(|| "out of range".to_string()),
            Format::Layout {
                layout,
                no_year,
                location,
            } => {
                let parsed = layout.parse(value)?;
                resolve(parsed, location.as_ref(), *no_year)
            }
        }
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`.
fn go_parse_int(s: &str) -> Result<i64, String> {
    s.parse::<i64>().map_err(|e| format!("{s:?}: {e}"))
}

/// Promtail's `Unix`: `sec` or `sec.frac`, the fraction scaled by its number of digits.
fn parse_unix(value: &str) -> Result<i64, String> {
    let (sec, nsec) = match value.split_once('.') {
        Some((sec, frac)) if !frac.contains('.') => {
            let f = go_parse_int(frac)?;
            let nsec = (f as f64 * 10f64.powi(9 - frac.len() as i32)) as i64;
            (go_parse_int(sec)?, nsec)
        }
        _ => (go_parse_int(value)?, 0),
    };
    sec.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nsec))
        .ok_or_else(|| "out of range".to_string())
}

/// The instant of parsed fields: in the zone the value named, else in `location` (UTC if none);
/// with the year from the clock for `no_year` layouts.
fn resolve(mut p: Parsed, location: Option<&TimeZone>, no_year: bool) -> Result<i64, String> {
    if no_year {
        if p.year != 0 {
            return Err("timestamp is expected to not contain the year date component".into());
        }
        let now = jiff::Zoned::now();
        p.year = year_without_year(p.month, now.year() as i64, now.month());
        // Go's AddDate normalizes 29 February of a common year to 1 March.
        if p.month == 2 && p.day == 29 && !layout::is_leap(p.year) {
            (p.month, p.day) = (3, 1);
        }
    }
    let offset = match &p.zone {
        Zone::Fixed(offset) => Some(*offset),
        Zone::Local => None,
        Zone::Name(name) => {
            match location.and_then(|tz| layout::abbreviation_offset(tz, name, p.wall_seconds())) {
                // Once the year is taken from the clock, Go re-reads the wall time in the location.
                Some(_) if no_year => None,
                Some(offset) => Some(offset),
                None => Some(gmt_offset(name)),
            }
        }
    };
    let seconds = match (offset, location) {
        (Some(offset), _) => p.wall_seconds() - offset as i64,
        (None, None) => p.wall_seconds(),
        (None, Some(tz)) => {
            let civil = p.civil().ok_or("year out of range")?;
            let zoned = civil.to_zoned(tz.clone()).map_err(|e| e.to_string())?;
            zoned.timestamp().as_second()
        }
    };
    seconds
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(p.nanosecond as i64))
        .ok_or_else(|| "timestamp out of range".to_string())
}

/// The year Promtail gives a timestamp in `month` read without a year at `now_year`/`now_month`:
/// the current one, except across New Year (December read in January, January read in December).
fn year_without_year(month: i8, now_year: i64, now_month: i8) -> i64 {
    now_year
        + match (month, now_month) {
            (12, 1) => -1,
            (1, 12) => 1,
            _ => 0,
        }
}

/// The instant of parsed fields with `tz` as the location (sprig's `toDate`).
pub fn resolve_in(p: Parsed, tz: &TimeZone) -> Result<i64, String> {
    resolve(p, Some(tz), false)
}

/// The offset Go gives an abbreviation the location does not know: `GMT+3` is three hours east,
/// anything else is UTC.
fn gmt_offset(name: &str) -> i32 {
    match name.strip_prefix("GMT") {
        Some(hours) if !hours.is_empty() => hours
            .trim_start_matches('+')
            .parse::<i32>()
            .map_or(0, |h| h * 3600),
        _ => 0,
    }
}

/// Go's `time.LoadLocation`: "" and "UTC" are UTC, "Local" the host's zone, else an IANA name.
fn load_location(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        _ => TimeZone::get(name).map_err(|e| format!("invalid location specified: {name:?}: {e}")),
    }
}

struct Factory {
    source: String,
    formats: Arc<[Format]>,
    fudge: bool,
}

pub fn build(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: TimestampConfig = decode("timestamp", body)?;
    let source = cfg
        .source
        .filter(|s| !s.is_empty())
        .ok_or("timestamp source value is required if timestamp is specified")?;
    let format = cfg
        .format
        .filter(|s| !s.is_empty())
        .ok_or("timestamp format is required")?;
    let location = cfg.location.as_deref().map(load_location).transpose()?;
    let fudge = match cfg.action_on_failure.as_deref() {
        None | Some("fudge") => true,
        Some("skip") => false,
        Some(other) => {
            return Err(format!(
                "invalid action on failure {other:?} (supported values are [skip fudge])"
            ))
        }
    };
    let formats = std::iter::once(&format)
        .chain(&cfg.fallback_formats)
        .map(|f| Format::new(f, location.as_ref()))
        .collect();
    Ok(Arc::new(Factory {
        source,
        formats,
        fudge,
    }))
}

impl StageFactory for Factory {
    fn instantiate(&self) -> Box<dyn Stage> {
        // A layout without a year reads the clock, so the same text may not give the same instant.
        let repeatable = !self
            .formats
            .iter()
            .any(|f| matches!(f, Format::Layout { no_year: true, .. }));
        Box::new(TimestampStage {
            source: self.source.clone(),
            formats: self.formats.clone(),
            last_known: self.fudge.then(LastKnown::default),
            last_parsed: repeatable.then(|| (String::new(), None)),
        })
    }
}

struct TimestampStage {
    source: String,
    formats: Arc<[Format]>,
    /// For `fudge`: the last timestamp per label set.
    last_known: Option<LastKnown>,
    /// The last text parsed and its instant, when parsing depends on the text alone: consecutive
    /// lines often carry the same time (to the second), and a compare costs less than a parse.
    last_parsed: Option<(String, Option<i64>)>,
}

impl TimestampStage {
    fn parse(&mut self, item: &Item) -> Option<i64> {
        let value = value_to_string(item.extracted.get(&self.source)?)?;
        if let Some((text, Some(ts))) = &self.last_parsed {
            if *text == *value {
                return Some(*ts);
            }
        }
        let mut last_err = None;
        for format in self.formats.iter() {
            match format.parse(&value) {
                Ok(ts) => {
                    if let Some((text, parsed)) = &mut self.last_parsed {
                        text.clear();
                        text.push_str(&value);
                        *parsed = Some(ts);
                    }
                    return Some(ts);
                }
                Err(e) => last_err = last_err.or(Some(e)),
            }
        }
        tracing::debug!(
            source = %self.source,
            value = %value,
            error = last_err.as_deref().unwrap_or(""),
            "timestamp stage: failed to parse time"
        );
        None
    }
}

impl Stage for TimestampStage {
    fn name(&self) -> &'static str {
        "timestamp"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        let parsed = self.parse(&item);
        if let Some(last_known) = &mut self.last_known {
            let key = label_key(&item);
            match parsed {
                Some(ts) => item.timestamp = ts,
                None => match last_known.get(key) {
                    Some(last) => item.timestamp = last.saturating_add(1),
                    None => {
                        out.push(item);
                        return;
                    }
                },
            }
            last_known.put(key, item.timestamp);
        } else if let Some(ts) = parsed {
            item.timestamp = ts;
        }
        out.push(item);
    }
}

/// A 64-bit digest of the entry's label set, standing for Promtail's `labels.String()` key. A shared
/// set carries its digest.
fn label_key(item: &Item) -> u64 {
    match &item.labels {
        ItemLabels::Shared(set) => set.content_hash(),
        ItemLabels::Owned(map) => labels_hash(map),
    }
}

/// The last timestamp per label set, bounded: when full, the least recently used tenth goes.
#[derive(Default)]
struct LastKnown {
    /// Keyed by [`label_key`], already a hash.
    map: rustc_hash::FxHashMap<u64, (i64, u64)>,
    tick: u64,
}

impl LastKnown {
    fn get(&mut self, key: u64) -> Option<i64> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(&key).map(|(ts, used)| {
            *used = tick;
            *ts
        })
    }

    fn put(&mut self, key: u64, ts: i64) {
        self.tick += 1;
        self.map.insert(key, (ts, self.tick));
        if self.map.len() > FUDGE_CAPACITY {
            let mut ticks: Vec<u64> = self.map.values().map(|&(_, used)| used).collect();
            let cut = FUDGE_CAPACITY / 10;
            let (_, &mut oldest_kept, _) = ticks.select_nth_unstable(cut);
            self.map.retain(|_, &mut (_, used)| used >= oldest_kept);
        }
    }
}
