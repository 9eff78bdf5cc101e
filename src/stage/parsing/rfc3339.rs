//! Go's `time.Parse(time.RFC3339Nano, s)`, the only timestamp format the `docker` and `cri` stages use.
//!
//! Layout `2006-01-02T15:04:05.999999999Z07:00`, read as Go reads it: a four-digit year; two-digit
//! month, day, minute and second; a one- or two-digit hour; an optional fraction after `.` or `,` with
//! any number of digits (only the first nine count); then `Z` or a `±hh:mm` offset, and nothing after.
//! Fields out of range (month 13, February 30, hour 24, second 60, offset hour over 24) are errors.
//! The result is Unix nanoseconds; instants outside what an i64 of nanoseconds holds (before 1677 or
//! after 2262) are refused, where Go would accept them.

/// Unix nanoseconds of an RFC3339Nano timestamp, or `None` if Go would not parse it.
pub fn parse_nano(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut p = Cursor { b, i: 0 };
    let year = p.fixed(4)? as i64;
    p.lit(b'-')?;
    let month = p.fixed(2)?;
    p.lit(b'-')?;
    let day = p.fixed(2)?;
    p.lit(b'T')?;
    let hour = p.hour()?;
    p.lit(b':')?;
    let minute = p.fixed(2)?;
    p.lit(b':')?;
    let second = p.fixed(2)?;
    let nanos = p.fraction();
    let offset = p.zone()?;
    if p.i != b.len()
        || !(1..=12).contains(&month)
        || hour >= 24
        || minute >= 60
        || second >= 60
        || day < 1
        || day > days_in_month(year, month)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digit(&self, at: usize) -> Option<u32> {
        self.b
            .get(at)
            .filter(|c| c.is_ascii_digit())
            .map(|c| u32::from(c - b'0'))
    }

    /// Exactly `n` digits.
    fn fixed(&mut self, n: usize) -> Option<u32> {
        let mut v = 0;
        for k in 0..n {
            v = v * 10 + self.digit(self.i + k)?;
        }
        self.i += n;
        Some(v)
    }

    /// Go's `15` reads one or two digits.
    fn hour(&mut self) -> Option<u32> {
        let first = self.digit(self.i)?;
        match self.digit(self.i + 1) {
            Some(second) => {
                self.i += 2;
                Some(first * 10 + second)
            }
            None => {
                self.i += 1;
                Some(first)
            }
        }
    }

    fn lit(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// `.999999999`: optional; any number of digits, the tenth and later ignored.
    fn fraction(&mut self) -> i64 {
        if !matches!(self.b.get(self.i), Some(b'.' | b',')) || self.digit(self.i + 1).is_none() {
            return 0;
        }
        self.i += 1;
        let mut nanos = 0i64;
        let mut count = 0;
        while let Some(d) = self.digit(self.i) {
            if count < 9 {
                nanos = nanos * 10 + i64::from(d);
                count += 1;
            }
            self.i += 1;
        }
        nanos * 10i64.pow(9 - count)
    }

    /// `Z07:00`: `Z`, or `±hh:mm`; the offset in seconds east of UTC.
    fn zone(&mut self) -> Option<i64> {
        if self.lit(b'Z').is_some() {
            return Some(0);
        }
        let rest = self.b.get(self.i..self.i + 6)?;
        if rest[3] != b':' {
            return None;
        }
        let sign = match rest[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.i += 1;
        let hours = self.fixed(2)?;
        self.i += 1;
        let minutes = self.fixed(2)?;
        if hours > 24 || minutes > 60 {
            return None;
        }
        Some(sign * i64::from(hours * 3600 + minutes * 60))
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_nano;

    #[test]
    fn parses_what_go_parses() {
        let cases = [
            (
                "2019-04-30T02:12:41.8443515Z",
                Some(1_556_590_361_844_351_500),
            ),
            (
                "2019-01-01T01:00:00.000000001Z",
                Some(1_546_304_400_000_000_001),
            ),
            (
                "2019-05-07T18:57:50.904275087+00:00",
                Some(1_557_255_470_904_275_087),
            ),
            (
                "2026-02-02T13:00:00.000000123+00:00",
                Some(1_770_037_200_000_000_123),
            ),
            ("2026-02-02T22:00:00+09:00", Some(1_770_037_200_000_000_000)),
            ("2026-02-02T08:00:00-05:00", Some(1_770_037_200_000_000_000)),
            ("1970-01-01T00:00:00Z", Some(0)),
            ("1969-12-31T23:59:59.5Z", Some(-500_000_000)),
            // One-digit hour, comma fraction, more than nine digits.
            ("1970-01-01T1:00:00Z", Some(3_600_000_000_000)),
            ("1970-01-01T00:00:00,25Z", Some(250_000_000)),
            ("1970-01-01T00:00:00.1234567899Z", Some(123_456_789)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000_000_000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_nano(text), want, "{text}");
        }
    }

    #[test]
    fn refuses_what_go_refuses() {
        for text in [
            "hi!",
            "",
            "3242",
            "2019-04-30 02:12:41Z",
            "2019-04-30T02:12:41",
            "2019-04-30T02:12:41z",
            "2019-04-30T02:12:41Zextra",
            "2019-4-30T02:12:41Z",
            "2019-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2019-04-30T24:00:00Z",
            "2019-04-30T00:60:00Z",
            "2019-04-30T00:00:60Z",
            "2019-04-30T00:00:00.Z",
            "2019-04-30T00:00:00+0100",
            "2019-04-30T00:00:00+25:00",
            "3000-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_nano(text), None, "{text}");
        }
    }
}
