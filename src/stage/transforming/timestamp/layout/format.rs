//! Writing a time with a layout: Go's `Time.Format` element by element.

use jiff::Zoned;

use super::{Std, LONG_DAYS, LONG_MONTHS, SHORT_DAYS, SHORT_MONTHS};

fn push_int(out: &mut String, n: i64, width: usize) {
    use std::fmt::Write as _;
    if n < 0 {
        out.push('-');
    }
    let _ = write!(out, "{:0width$}", n.unsigned_abs());
}

pub(super) fn format_std(std: Std, t: &Zoned, out: &mut String) {
    let year = t.year() as i64;
    let offset = t.offset().seconds();
    match std {
        Std::Year => push_int(out, year.rem_euclid(100), 2),
        Std::LongYear => push_int(out, year, 4),
        Std::Month => out.push_str(SHORT_MONTHS[t.month() as usize - 1]),
        Std::LongMonth => out.push_str(LONG_MONTHS[t.month() as usize - 1]),
        Std::NumMonth => push_int(out, t.month() as i64, 0),
        Std::ZeroMonth => push_int(out, t.month() as i64, 2),
        Std::WeekDay => out.push_str(SHORT_DAYS[t.weekday().to_sunday_zero_offset() as usize]),
        Std::LongWeekDay => out.push_str(LONG_DAYS[t.weekday().to_sunday_zero_offset() as usize]),
        Std::Day => push_int(out, t.day() as i64, 0),
        Std::UnderDay => {
            if t.day() < 10 {
                out.push(' ');
            }
            push_int(out, t.day() as i64, 0)
        }
        Std::ZeroDay => push_int(out, t.day() as i64, 2),
        Std::UnderYearDay => {
            let d = t.day_of_year() as i64;
            out.push_str(if d < 10 {
                "  "
            } else if d < 100 {
                " "
            } else {
                ""
            });
            push_int(out, d, 0)
        }
        Std::ZeroYearDay => push_int(out, t.day_of_year() as i64, 3),
        Std::Hour => push_int(out, t.hour() as i64, 2),
        Std::Hour12 | Std::ZeroHour12 => {
            let h = match t.hour() % 12 {
                0 => 12,
                h => h as i64,
            };
            push_int(out, h, if std == Std::Hour12 { 0 } else { 2 })
        }
        Std::Minute => push_int(out, t.minute() as i64, 0),
        Std::ZeroMinute => push_int(out, t.minute() as i64, 2),
        Std::Second => push_int(out, t.second() as i64, 0),
        Std::ZeroSecond => push_int(out, t.second() as i64, 2),
        Std::Pm => out.push_str(if t.hour() >= 12 { "PM" } else { "AM" }),
        Std::PmLower => out.push_str(if t.hour() >= 12 { "pm" } else { "am" }),
        Std::Tz => {
            let info = t.time_zone().to_offset_info(t.timestamp());
            let name = info.abbreviation();
            if !name.is_empty() && !name.starts_with(['+', '-']) {
                out.push_str(name);
            } else {
                format_std(
                    Std::Offset {
                        iso: false,
                        colon: false,
                        fields: 2,
                    },
                    t,
                    out,
                );
            }
        }
        Std::Offset { iso, colon, fields } => {
            if iso && offset == 0 {
                out.push('Z');
                return;
            }
            out.push(if offset < 0 { '-' } else { '+' });
            let abs = offset.unsigned_abs() as i64;
            push_int(out, abs / 3600, 2);
            if fields >= 2 {
                if colon {
                    out.push(':');
                }
                push_int(out, abs / 60 % 60, 2);
            }
            if fields == 3 {
                if colon {
                    out.push(':');
                }
                push_int(out, abs % 60, 2);
            }
        }
        Std::Frac { trim, digits, sep } => {
            let ns = t.subsec_nanosecond() as i64;
            if trim && (digits == 0 || ns == 0) {
                return;
            }
            let mut s = format!("{ns:09}");
            s.truncate(digits.min(9) as usize);
            if trim {
                s.truncate(s.trim_end_matches('0').len());
                if s.is_empty() {
                    return;
                }
            }
            out.push(sep as char);
            out.push_str(&s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Layout;

    #[test]
    fn formats_as_go() {
        // 2006-01-02T15:04:05.1234Z in UTC and in a fixed -07:00 zone (Go's reference time).
        let utc = jiff::Timestamp::from_nanosecond(1_136_214_245_123_400_000)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC);
        let mst = utc.with_time_zone(jiff::tz::TimeZone::fixed(jiff::tz::offset(-7)));
        let cases = [
            (&utc, "2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05Z"),
            (
                &utc,
                "2006-01-02T15:04:05.999999999Z07:00",
                "2006-01-02T15:04:05.1234Z",
            ),
            (&utc, "15:04:05.000000", "15:04:05.123400"),
            (&utc, "15:04:05,00", "15:04:05,12"),
            (
                &utc,
                "Mon, 02 Jan 2006 15:04:05 MST",
                "Mon, 02 Jan 2006 15:04:05 UTC",
            ),
            (
                &utc,
                "Monday January _2 3:4:5 PM pm",
                "Monday January  2 3:4:5 PM pm",
            ),
            (&utc, "06 002 __2 1/2", "06 002   2 1/2"),
            (
                &mst,
                "2006-01-02T15:04:05-07:00",
                "2006-01-02T08:04:05-07:00",
            ),
            (&mst, "Z0700 -07 -07:00:00 MST", "-0700 -07 -07:00:00 -0700"),
            (&mst, "Kitchen 3:04PM", "Kitchen 8:04AM"),
        ];
        for (t, layout, want) in cases {
            let mut out = String::new();
            Layout::new(layout).format(t, &mut out);
            assert_eq!(out, want, "{layout}");
        }
    }
}
