//! Reading a value with a layout: Go's `time.parse` element by element.

use super::{days_in_month, Parsed, Std, Zone, LONG_DAYS, LONG_MONTHS, SHORT_DAYS, SHORT_MONTHS};

/// Match a literal: a space in the layout matches one or more spaces (or the end) in the value.
pub(super) fn skip<'v>(mut value: &'v str, mut lit: &str) -> Option<&'v str> {
    while let Some(&c) = lit.as_bytes().first() {
        if c == b' ' {
            if value.as_bytes().first().is_some_and(|&v| v != b' ') {
                return None;
            }
            lit = lit.trim_start_matches(' ');
            value = value.trim_start_matches(' ');
            continue;
        }
        if value.as_bytes().first() != Some(&c) {
            return None;
        }
        lit = &lit[1..];
        value = &value[1..];
    }
    Some(value)
}

#[derive(Default)]
pub(super) struct ParseState {
    year: i64,
    month: Option<i64>,
    day: Option<i64>,
    yday: Option<i64>,
    hour: i64,
    minute: i64,
    second: i64,
    nanosecond: i64,
    pm: Option<bool>,
    zone: Option<Zone>,
}

impl ParseState {
    /// Read one element from `v`; `frac_next` tells whether the layout's next element is a fraction.
    pub(super) fn element<'v>(
        &mut self,
        std: Std,
        v: &'v str,
        frac_next: bool,
    ) -> Result<&'v str, String> {
        let bad = || "bad value".to_string();
        let range = |what: &str| format!("{what} out of range");
        Ok(match std {
            Std::Year => {
                let (y, rest) = fixed_digits(v, 2).ok_or_else(bad)?;
                self.year = if y >= 69 { 1900 + y } else { 2000 + y };
                rest
            }
            Std::LongYear => {
                if v.len() < 4 || !v.as_bytes()[0].is_ascii_digit() {
                    return Err(bad());
                }
                self.year = v[..4].parse::<i64>().map_err(|_| bad())?;
                &v[4..]
            }
            Std::Month | Std::LongMonth => {
                let names = if std == Std::Month {
                    &SHORT_MONTHS
                } else {
                    &LONG_MONTHS
                };
                let (i, rest) = lookup(names, v).ok_or_else(bad)?;
                self.month = Some(i as i64 + 1);
                rest
            }
            Std::NumMonth | Std::ZeroMonth => {
                let (m, rest) = getnum(v, std == Std::ZeroMonth).ok_or_else(bad)?;
                if !(1..=12).contains(&m) {
                    return Err(range("month"));
                }
                self.month = Some(m);
                rest
            }
            Std::WeekDay => lookup(&SHORT_DAYS, v).ok_or_else(bad)?.1,
            Std::LongWeekDay => lookup(&LONG_DAYS, v).ok_or_else(bad)?.1,
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                let v = match v.strip_prefix(' ') {
                    Some(rest) if std == Std::UnderDay => rest,
                    _ => v,
                };
                let (d, rest) = getnum(v, std == Std::ZeroDay).ok_or_else(bad)?;
                self.day = Some(d);
                rest
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                let v = if std == Std::UnderYearDay {
                    v.trim_start_matches(' ')
                } else {
                    v
                };
                let n = v.bytes().take(3).take_while(u8::is_ascii_digit).count();
                if n == 0 || (std == Std::ZeroYearDay && n < 3) {
                    return Err(bad());
                }
                let d: i64 = v[..n].parse().map_err(|_| bad())?;
                if !(1..=366).contains(&d) {
                    return Err(range("day-of-year"));
                }
                self.yday = Some(d);
                &v[n..]
            }
            Std::Hour => {
                let (h, rest) = getnum(v, false).ok_or_else(bad)?;
                if !(0..24).contains(&h) {
                    return Err(range("hour"));
                }
                self.hour = h;
                rest
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let (h, rest) = getnum(v, std == Std::ZeroHour12).ok_or_else(bad)?;
                if !(0..=12).contains(&h) {
                    return Err(range("hour"));
                }
                self.hour = h;
                rest
            }
            Std::Minute | Std::ZeroMinute => {
                let (m, rest) = getnum(v, std == Std::ZeroMinute).ok_or_else(bad)?;
                if !(0..60).contains(&m) {
                    return Err(range("minute"));
                }
                self.minute = m;
                rest
            }
            Std::Second | Std::ZeroSecond => {
                let (s, mut rest) = getnum(v, std == Std::ZeroSecond).ok_or_else(bad)?;
                if !(0..60).contains(&s) {
                    return Err(range("second"));
                }
                self.second = s;
                // A fraction the layout does not mention is accepted after the seconds.
                let b = rest.as_bytes();
                if !frac_next
                    && b.len() >= 2
                    && matches!(b[0], b'.' | b',')
                    && b[1].is_ascii_digit()
                {
                    let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    self.nanosecond = nanoseconds(&rest[..n]).ok_or_else(bad)?;
                    rest = &rest[n..];
                }
                rest
            }
            Std::Pm | Std::PmLower => {
                let (am, pm) = if std == Std::Pm {
                    ("AM", "PM")
                } else {
                    ("am", "pm")
                };
                let p = v.get(..2).ok_or_else(bad)?;
                self.pm = Some(if p == pm {
                    true
                } else if p == am {
                    false
                } else {
                    return Err(bad());
                });
                &v[2..]
            }
            Std::Offset { iso, colon, fields } => {
                if iso && v.starts_with('Z') {
                    self.zone = Some(Zone::Fixed(0));
                    return Ok(&v[1..]);
                }
                let (offset, rest) = parse_offset(v, colon, fields).ok_or_else(bad)?;
                self.zone = Some(Zone::Fixed(offset));
                rest
            }
            Std::Tz => {
                if let Some(rest) = v.strip_prefix("UTC") {
                    self.zone = Some(Zone::Fixed(0));
                    return Ok(rest);
                }
                let n = zone_name_len(v).ok_or_else(bad)?;
                self.zone = Some(Zone::Name(v[..n].to_string()));
                &v[n..]
            }
            Std::Frac {
                trim: false,
                digits,
                ..
            } => {
                let n = 1 + digits as usize;
                if v.len() < n {
                    return Err(bad());
                }
                self.nanosecond = nanoseconds(&v[..n]).ok_or_else(bad)?;
                &v[n..]
            }
            Std::Frac { trim: true, .. } => {
                let b = v.as_bytes();
                if b.len() < 2 || !matches!(b[0], b'.' | b',') || !b[1].is_ascii_digit() {
                    return Ok(v); // the fraction is optional
                }
                let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                self.nanosecond = nanoseconds(&v[..n]).ok_or_else(bad)?;
                &v[n..]
            }
        })
    }

    pub(super) fn finish(self) -> Result<Parsed, String> {
        let mut hour = self.hour;
        match self.pm {
            Some(true) if hour < 12 => hour += 12,
            Some(false) if hour == 12 => hour = 0,
            _ => {}
        }
        let (mut month, mut day) = (self.month, self.day);
        if let Some(yday) = self.yday {
            let (m, d) = month_day_of_year(self.year, yday);
            if month.is_some_and(|x| x != m) || day.is_some_and(|x| x != d) {
                return Err("day-of-year does not match month and day".into());
            }
            (month, day) = (Some(m), Some(d));
        }
        let month = month.unwrap_or(1);
        let day = day.unwrap_or(1);
        if day < 1 || day > days_in_month(self.year, month) {
            return Err("day out of range".into());
        }
        Ok(Parsed {
            year: self.year,
            month: month as i8,
            day: day as i8,
            hour: hour as i8,
            minute: self.minute as i8,
            second: self.second as i8,
            nanosecond: self.nanosecond as i32,
            zone: self.zone.unwrap_or(Zone::Local),
        })
    }
}

/// Go's `getnum`: one or two digits (`fixed`: exactly two).
fn getnum(v: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = v.as_bytes();
    let d0 = b.first().filter(|c| c.is_ascii_digit())?;
    match b.get(1).filter(|c| c.is_ascii_digit()) {
        Some(d1) => Some((((d0 - b'0') * 10 + (d1 - b'0')) as i64, &v[2..])),
        None if fixed => None,
        None => Some(((d0 - b'0') as i64, &v[1..])),
    }
}

fn fixed_digits(v: &str, n: usize) -> Option<(i64, &str)> {
    let digits = v.get(..n)?;
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, &v[n..]))
}

/// Case-insensitive match of one of `names` at the start of `v`.
fn lookup<'v>(names: &[&str], v: &'v str) -> Option<(usize, &'v str)> {
    names.iter().enumerate().find_map(|(i, name)| {
        let head = v.get(..name.len())?;
        head.eq_ignore_ascii_case(name)
            .then(|| (i, &v[name.len()..]))
    })
}

/// `.123` (or `,123`) as nanoseconds: at most nine digits count.
fn nanoseconds(frac: &str) -> Option<i64> {
    if !matches!(frac.as_bytes().first(), Some(b'.' | b',')) {
        return None;
    }
    let digits = &frac[1..frac.len().min(10)];
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut ns: i64 = digits.parse().ok()?;
    for _ in digits.len()..9 {
        ns *= 10;
    }
    Some(ns)
}

/// A numeric offset `±hh[:mm[:ss]]` as seconds east of UTC.
fn parse_offset(v: &str, colon: bool, fields: u8) -> Option<(i32, &str)> {
    let b = v.as_bytes();
    let width = match (fields, colon) {
        (1, _) => 3,
        (2, false) => 5,
        (2, true) => 6,
        (_, false) => 7,
        (_, true) => 9,
    };
    if b.len() < width || (colon && (b[3] != b':' || (fields == 3 && b[6] != b':'))) {
        return None;
    }
    let step = if colon { 3 } else { 2 };
    let mut parts = [0i64; 3];
    for (k, part) in parts.iter_mut().enumerate().take(fields as usize) {
        *part = fixed_digits(&v[1 + k * step..], 2)?.0;
    }
    let offset = ((parts[0] * 60 + parts[1]) * 60 + parts[2]) as i32;
    match b[0] {
        b'+' => Some((offset, &v[width..])),
        b'-' => Some((-offset, &v[width..])),
        _ => None,
    }
}

/// How long the zone abbreviation at the start of `v` is (Go's `parseTimeZone`).
fn zone_name_len(v: &str) -> Option<usize> {
    let b = v.as_bytes();
    if b.len() < 3 {
        return None;
    }
    if v.starts_with("ChST") || v.starts_with("MeST") {
        return Some(4);
    }
    if let Some(rest) = v.strip_prefix("GMT") {
        return Some(3 + signed_offset_len(rest));
    }
    if matches!(b[0], b'+' | b'-') {
        return Some(signed_offset_len(v)).filter(|&n| n > 0);
    }
    let upper = b
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    match upper {
        3 => Some(3),
        4 if b[3] == b'T' || v.starts_with("WITA") => Some(4),
        5 if b[4] == b'T' => Some(5),
        _ => None,
    }
}

/// Go's `parseSignedOffset`: `+3`, `-10` after `GMT`.
fn signed_offset_len(v: &str) -> usize {
    let b = v.as_bytes();
    if !matches!(b.first(), Some(b'+' | b'-')) {
        return 0;
    }
    let n = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    match v[1..1 + n].parse::<i64>() {
        Ok(x) if n > 0 && x <= 24 => 1 + n,
        _ => 0,
    }
}

fn month_day_of_year(year: i64, mut yday: i64) -> (i64, i64) {
    let mut month = 1;
    while month < 12 && yday > days_in_month(year, month) {
        yday -= days_in_month(year, month);
        month += 1;
    }
    (month, yday)
}
