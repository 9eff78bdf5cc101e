//! Go's reference-time layouts (`2006-01-02T15:04:05.999999999Z07:00`), parsed and formatted as Go's
//! `time` package does (`time/format.go`).
//!
//! A layout is split once into literal text and elements (`Jan`, `02`, `15`, `.000`, `-07:00`, `MST`,
//! ...), with Go's rules for what counts as an element (`Jan` but not `Janx`, `.000` only when no digit
//! follows, `_2006` is `_` then `2006`). Parsing follows Go: spaces in the layout match any run of
//! spaces, `_2` accepts a leading space, numbers take at most two digits, a fraction of a second is
//! accepted after the seconds even when the layout has none, `Z07:00` accepts `Z`, and a zone
//! abbreviation (`MST`) is read as 3–5 upper-case letters whose offset depends on the location (see
//! [`Zone::Name`]).

mod format;
mod parse;

use jiff::{tz::TimeZone, Timestamp, Zoned};

use self::format::format_std;
use self::parse::{skip, ParseState};

/// One element of a layout.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm,
    PmLower,
    Tz,
    /// Numeric offset: `iso` = the `Z` form (writes `Z` for UTC, reads `Z`); `colon` between fields;
    /// `fields` = 1 (`-07`), 2 (`-0700`) or 3 (`-070000`).
    Offset {
        iso: bool,
        colon: bool,
        fields: u8,
    },
    /// `.000` (`trim` false) or `.999` (`trim` true) with `digits` digits, written with `sep`.
    Frac {
        trim: bool,
        digits: u8,
        sep: u8,
    },
}

#[derive(Clone, Debug)]
enum Chunk {
    Lit(Box<str>),
    Std(Std),
}

/// A Go layout, split once.
#[derive(Clone, Debug)]
pub struct Layout {
    chunks: Vec<Chunk>,
    /// Per chunk: the next element is a fraction (Go then leaves a fraction after the seconds to it).
    frac_next: Vec<bool>,
}

/// The zone a parsed value gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Zone {
    /// None: the wall clock is in the parse location (UTC for `time.Parse`).
    Local,
    /// `Z`, `UTC`, or a numeric offset (seconds east of UTC).
    Fixed(i32),
    /// An abbreviation such as `EST`: Go uses its offset if the location knows the name, else UTC
    /// (`GMT+3` style names carry their hour offset).
    Name(String),
}

/// The fields a value gave; `year` is 0 when the layout has none.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub year: i64,
    pub month: i8,
    pub day: i8,
    pub hour: i8,
    pub minute: i8,
    pub second: i8,
    pub nanosecond: i32,
    pub zone: Zone,
}

const SHORT_MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const SHORT_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

impl Layout {
    pub fn new(layout: &str) -> Layout {
        let mut chunks = Vec::new();
        let mut rest = layout;
        while !rest.is_empty() {
            match next_std(rest) {
                Some((start, std, len)) => {
                    if start > 0 {
                        chunks.push(Chunk::Lit(rest[..start].into()));
                    }
                    chunks.push(Chunk::Std(std));
                    rest = &rest[start + len..];
                }
                None => {
                    chunks.push(Chunk::Lit(rest.into()));
                    rest = "";
                }
            }
        }
        let frac_next = (0..chunks.len())
            .map(|i| {
                chunks[i + 1..]
                    .iter()
                    .find_map(|c| match c {
                        Chunk::Std(s) => Some(matches!(s, Std::Frac { .. })),
                        Chunk::Lit(_) => None,
                    })
                    .unwrap_or(false)
            })
            .collect();
        Layout { chunks, frac_next }
    }

    /// Parse `value` (Go `time.Parse` up to the choice of location).
    pub fn parse(&self, value: &str) -> Result<Parsed, String> {
        let mut st = ParseState::default();
        let mut v = value;
        for (i, chunk) in self.chunks.iter().enumerate() {
            v = match chunk {
                Chunk::Lit(lit) => {
                    skip(v, lit).ok_or_else(|| format!("cannot parse {v:?} as {:?}", &**lit))?
                }
                Chunk::Std(std) => st
                    .element(*std, v, self.frac_next[i])
                    .map_err(|e| format!("cannot parse {v:?}: {e}"))?,
            };
        }
        if !v.is_empty() {
            return Err(format!("extra text: {v:?}"));
        }
        st.finish()
    }

    /// Append `t` formatted with this layout (Go `Time.Format`).
    pub fn format(&self, t: &Zoned, out: &mut String) {
        for chunk in &self.chunks {
            match chunk {
                Chunk::Lit(lit) => out.push_str(lit),
                Chunk::Std(std) => format_std(*std, t, out),
            }
        }
    }
}

/// The first element in `layout`: (byte offset, element, length), as Go's `nextStdChunk`.
fn next_std(layout: &str) -> Option<(usize, Std, usize)> {
    let b = layout.as_bytes();
    let at = |i: usize, s: &str| b.len() >= i + s.len() && &b[i..i + s.len()] == s.as_bytes();
    let lower_at = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_lowercase());
    for i in 0..b.len() {
        let next = b.get(i + 1).copied();
        let found = match b[i] {
            b'J' if at(i, "January") => Some((Std::LongMonth, 7)),
            b'J' if at(i, "Jan") && !lower_at(i + 3) => Some((Std::Month, 3)),
            b'M' if at(i, "Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if at(i, "Mon") && !lower_at(i + 3) => Some((Std::WeekDay, 3)),
            b'M' if at(i, "MST") => Some((Std::Tz, 3)),
            b'0' => match next {
                Some(c @ b'1'..=b'6') => Some((
                    [
                        Std::ZeroMonth,
                        Std::ZeroDay,
                        Std::ZeroHour12,
                        Std::ZeroMinute,
                        Std::ZeroSecond,
                        Std::Year,
                    ][(c - b'1') as usize],
                    2,
                )),
                Some(b'0') if b.get(i + 2) == Some(&b'2') => Some((Std::ZeroYearDay, 3)),
                _ => None,
            },
            b'1' if next == Some(b'5') => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if at(i, "2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            // `_2006` is a literal `_` followed by the year.
            b'_' if next == Some(b'2') && at(i + 1, "2006") => {
                return Some((i + 1, Std::LongYear, 4))
            }
            b'_' if next == Some(b'2') => Some((Std::UnderDay, 2)),
            b'_' if at(i, "__2") => Some((Std::UnderYearDay, 3)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if next == Some(b'M') => Some((Std::Pm, 2)),
            b'p' if next == Some(b'm') => Some((Std::PmLower, 2)),
            c @ (b'-' | b'Z') => {
                let iso = c == b'Z';
                let forms: [(&str, bool, u8); 5] = [
                    ("070000", false, 3),
                    ("07:00:00", true, 3),
                    ("0700", false, 2),
                    ("07:00", true, 2),
                    ("07", false, 1),
                ];
                forms
                    .iter()
                    .find(|(f, _, _)| at(i + 1, f))
                    .map(|&(f, colon, fields)| (Std::Offset { iso, colon, fields }, f.len() + 1))
            }
            sep @ (b'.' | b',') if matches!(next, Some(b'0' | b'9')) => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == ch {
                    j += 1;
                }
                // Only a fraction if the run of digits ends the number.
                if b.get(j).is_some_and(u8::is_ascii_digit) {
                    None
                } else {
                    let digits = (j - i - 1) as u8;
                    Some((
                        Std::Frac {
                            trim: ch == b'9',
                            digits,
                            sep,
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        if let Some((std, len)) = found {
            return Some((i, std, len));
        }
    }
    None
}

pub fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Parsed {
    /// Seconds since the epoch of the wall clock read as UTC.
    pub fn wall_seconds(&self) -> i64 {
        days_from_civil(self.year, self.month as i64, self.day as i64) * 86_400
            + self.hour as i64 * 3600
            + self.minute as i64 * 60
            + self.second as i64
    }

    /// The wall clock as a jiff civil date-time, if jiff's range holds the year.
    pub fn civil(&self) -> Option<jiff::civil::DateTime> {
        let year = i16::try_from(self.year).ok()?;
        jiff::civil::DateTime::new(
            year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanosecond,
        )
        .ok()
    }
}

/// The offset in force in `tz` for a zone abbreviation near the wall time `wall` (seconds, read as
/// UTC), as Go's `Location.lookupName` finds it: the zone's current offset if it goes by that name
/// then, else the offset of the other half of the year (daylight saving time and back).
pub fn abbreviation_offset(tz: &TimeZone, name: &str, wall: i64) -> Option<i32> {
    const HALF_YEAR: i64 = 182 * 86_400;
    for probe in [wall, wall - HALF_YEAR, wall + HALF_YEAR] {
        let Ok(ts) = Timestamp::from_second(probe) else {
            continue;
        };
        let guess = tz.to_offset(ts).seconds() as i64;
        let Ok(at) = Timestamp::from_second(probe - guess) else {
            continue;
        };
        let info = tz.to_offset_info(at);
        if info.abbreviation() == name {
            return Some(info.offset().seconds());
        }
    }
    None
}
