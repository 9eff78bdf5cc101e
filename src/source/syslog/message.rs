//! One syslog message, parsed as Promtail's parser (leodido/go-syslog v4, best-effort mode) reads it:
//! [RFC 5424](https://www.rfc-editor.org/rfc/rfc5424#section-6) or
//! [RFC 3164](https://www.rfc-editor.org/rfc/rfc3164#section-4.1), chosen by `syslog_format` for the
//! whole listener (there is no guessing per message, as in Promtail).
//!
//! Promtail drops every message its parser reports an error for, even in best-effort mode (the
//! target's callback checks the error first), so what matters here is where the grammar draws the
//! line between a message and a parse error; the fields of a message that parses are what go-syslog
//! gives. Where logferry is more lenient, on purpose:
//! * RFC 3164: any byte may appear in MSG (go-syslog refuses control characters other than tab); a
//!   timestamp without a year gets the current year (go-syslog leaves year 0, which Loki refuses), or
//!   last year when that would put it more than a day ahead;
//! * RFC 5424: a backslash before a character other than `"`, `\` or `]` in a structured-data value
//!   is kept as it is (go-syslog refuses the message).

use std::borrow::Cow;

use crate::stage::parsing::rfc3339;

/// The parts of a syslog message the source turns into labels and a line, borrowed from the frame
/// where they can be (no copy per field and message).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message<'a> {
    /// `facility * 8 + severity`.
    pub priority: u8,
    /// RFC 5424's VERSION; 0 for RFC 3164.
    pub version: u16,
    /// Unix nanoseconds.
    pub timestamp: Option<i64>,
    /// The timestamp's UTC offset in seconds, for re-serializing (RFC 5424).
    pub offset_seconds: i32,
    pub hostname: Option<Cow<'a, str>>,
    pub app_name: Option<Cow<'a, str>>,
    pub proc_id: Option<Cow<'a, str>>,
    pub msg_id: Option<Cow<'a, str>>,
    /// The structured-data elements in the order received (RFC 5424).
    pub structured_data: Vec<SdElement<'a>>,
    /// The MSG part; `None` when absent or empty (Promtail's "empty message").
    pub message: Option<Cow<'a, str>>,
}

/// One structured-data element: its SD-ID and its (PARAM-NAME, value) pairs in order.
pub type SdElement<'a> = (Cow<'a, str>, Vec<(Cow<'a, str>, Cow<'a, str>)>);

/// Why a message did not parse; the name is what the source logs (once per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    Priority,
    Version,
    Timestamp,
    Hostname,
    AppName,
    ProcId,
    MsgId,
    StructuredData,
    DuplicateSdId,
    /// RFC 3164: nothing after the timestamp.
    NoMessage,
}

impl ParseError {
    pub fn as_str(self) -> &'static str {
        match self {
            ParseError::Priority => {
                "expecting a priority value within angle brackets (<0> to <191>)"
            }
            ParseError::Version => "expecting a version value in the range 1-999",
            ParseError::Timestamp => "expecting a valid timestamp or a nil value",
            ParseError::Hostname => {
                "expecting a hostname (1 to 255 printable US-ASCII characters) or a nil value"
            }
            ParseError::AppName => {
                "expecting an app-name (1 to 48 printable US-ASCII characters) or a nil value"
            }
            ParseError::ProcId => {
                "expecting a procid (1 to 128 printable US-ASCII characters) or a nil value"
            }
            ParseError::MsgId => {
                "expecting a msgid (1 to 32 printable US-ASCII characters) or a nil value"
            }
            ParseError::StructuredData => {
                "expecting structured data ([id key=\"value\"]...) or a nil value"
            }
            ParseError::DuplicateSdId => "duplicate structured data element id",
            ParseError::NoMessage => "expecting a message after the timestamp",
        }
    }
}

/// go-syslog's `SeverityLevels`, by severity.
pub const SEVERITIES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
];

/// go-syslog's `FacilityKeywords` (RFC 5427), by facility.
pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

impl Message<'_> {
    pub fn severity(&self) -> &'static str {
        SEVERITIES[usize::from(self.priority % 8)]
    }

    pub fn facility(&self) -> &'static str {
        FACILITIES[usize::from(self.priority / 8)]
    }

    /// The message re-serialized as RFC 5424 (`use_rfc5424_message`), as go-syslog's `String()` writes
    /// it: nil fields as `-`, structured-data elements and parameters sorted by name, values escaped.
    pub fn to_rfc5424(&self) -> String {
        let mut out = format!("<{}>{} ", self.priority, self.version.max(1));
        let field = |out: &mut String, v: Option<&str>| {
            out.push_str(v.unwrap_or("-"));
            out.push(' ');
        };
        let stamp = self
            .timestamp
            .map(|t| rfc3339_micro(t, self.offset_seconds));
        field(&mut out, stamp.as_deref());
        field(&mut out, self.hostname.as_deref());
        field(&mut out, self.app_name.as_deref());
        field(&mut out, self.proc_id.as_deref());
        field(&mut out, self.msg_id.as_deref());
        if self.structured_data.is_empty() {
            out.push('-');
        } else {
            let mut elements: Vec<_> = self.structured_data.iter().collect();
            elements.sort_by(|a, b| a.0.cmp(&b.0));
            for (id, params) in elements {
                out.push('[');
                out.push_str(id);
                let mut params: Vec<_> = params.iter().collect();
                params.sort_by(|a, b| a.0.cmp(&b.0));
                for (name, value) in params {
                    out.push(' ');
                    out.push_str(name);
                    out.push_str("=\"");
                    for c in value.chars() {
                        if matches!(c, '"' | '\\' | ']') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                }
                out.push(']');
            }
        }
        if let Some(m) = &self.message {
            out.push(' ');
            out.push_str(m);
        }
        out
    }
}

/// A cursor over the bytes of one message.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn rest(&self) -> &'a [u8] {
        &self.b[self.i..]
    }

    /// The bytes up to the next space (or the end), consumed.
    fn token(&mut self) -> &'a [u8] {
        let rest = self.rest();
        let n = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        self.i += n;
        &rest[..n]
    }

    /// `<PRIVAL>`: 0 to 191, no leading zero.
    fn priority(&mut self) -> Result<u8, ParseError> {
        if !self.eat(b'<') {
            return Err(ParseError::Priority);
        }
        let digits = self.digits(3);
        let ok = !digits.is_empty() && (digits.len() == 1 || digits[0] != b'0');
        let value = number(digits);
        if !ok || value > 191 || !self.eat(b'>') {
            return Err(ParseError::Priority);
        }
        Ok(value as u8)
    }

    /// Up to `max` ASCII digits, consumed.
    fn digits(&mut self, max: usize) -> &'a [u8] {
        let rest = self.rest();
        let n = rest
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        self.i += n;
        &rest[..n]
    }
}

fn number(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

/// `b` as text, invalid UTF-8 replaced. Valid text (nearly always) is checked with `from_utf8`, whose
/// ASCII fast path is several times quicker than `from_utf8_lossy`'s chunk iterator (measured: the
/// latter was 12% of the agent's CPU on syslog over TCP).
fn lossy(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// PRINTUSASCII (`%d33-126`).
fn printable(b: &[u8]) -> bool {
    b.iter().all(|c| (33..=126).contains(c))
}

/// An RFC 5424 header field: NILVALUE (`None`) or 1 to `max` printable characters.
fn header_field(
    token: &[u8],
    max: usize,
    err: ParseError,
) -> Result<Option<Cow<'_, str>>, ParseError> {
    if token == b"-" {
        return Ok(None);
    }
    if token.is_empty() || token.len() > max || !printable(token) {
        return Err(err);
    }
    Ok(Some(lossy(token)))
}

/// Parses one RFC 5424 message (the frame, without its trailer).
pub fn parse_rfc5424(frame: &[u8]) -> Result<Message<'_>, ParseError> {
    let mut c = Cursor { b: frame, i: 0 };
    let priority = c.priority()?;
    let version = c.digits(3);
    if version.is_empty() || version[0] == b'0' {
        return Err(ParseError::Version);
    }
    let version = number(version) as u16;
    if !c.eat(b' ') {
        return Err(ParseError::Version);
    }
    let mut m = Message {
        priority,
        version,
        ..Message::default()
    };
    let stamp = c.token();
    if stamp != b"-" {
        let text = std::str::from_utf8(stamp).map_err(|_| ParseError::Timestamp)?;
        m.timestamp = Some(rfc5424_timestamp(text).ok_or(ParseError::Timestamp)?);
        m.offset_seconds = utc_offset(text);
    }
    let fields = [
        (255, ParseError::Hostname),
        (48, ParseError::AppName),
        (128, ParseError::ProcId),
        (32, ParseError::MsgId),
    ];
    let mut values = Vec::with_capacity(4);
    for (max, err) in fields {
        if !c.eat(b' ') {
            return Err(err);
        }
        values.push(header_field(c.token(), max, err)?);
    }
    let mut values = values.into_iter();
    m.hostname = values.next().flatten();
    m.app_name = values.next().flatten();
    m.proc_id = values.next().flatten();
    m.msg_id = values.next().flatten();
    if !c.eat(b' ') {
        return Err(ParseError::StructuredData);
    }
    if !c.eat(b'-') {
        m.structured_data = structured_data(&mut c)?;
    }
    match c.peek() {
        None => {}
        Some(b' ') => {
            let msg = &c.rest()[1..];
            if !msg.is_empty() {
                m.message = Some(lossy(msg));
            }
        }
        Some(_) => return Err(ParseError::StructuredData),
    }
    Ok(m)
}

/// FULL-DATE "T" FULL-TIME with at most 6 fraction digits (go-syslog's grammar), read as Go's RFC 3339.
fn rfc5424_timestamp(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b.get(19) == Some(&b'.') {
        let digits = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=6).contains(&digits) {
            return None;
        }
    }
    rfc3339::parse_nano(text)
}

/// The `±hh:mm` at the end of a valid RFC 3339 timestamp, in seconds (0 for `Z`).
fn utc_offset(text: &str) -> i32 {
    let b = text.as_bytes();
    if b.len() < 6 || !matches!(b[b.len() - 6], b'+' | b'-') {
        return 0;
    }
    let n = |i: usize| i32::from(b[i] - b'0');
    let at = b.len() - 5;
    let secs = (n(at) * 10 + n(at + 1)) * 3600 + (n(at + 3) * 10 + n(at + 4)) * 60;
    if b[b.len() - 6] == b'-' {
        -secs
    } else {
        secs
    }
}

/// Go's `Format("2006-01-02T15:04:05.999999Z07:00")` of `ns` at `offset` seconds east of UTC: at most 6
/// fraction digits, trailing zeros dropped, `Z` for a zero offset.
fn rfc3339_micro(ns: i64, offset: i32) -> String {
    let local = ns + i64::from(offset) * 1_000_000_000;
    let mut out = crate::entry::format_rfc3339_nanos(local);
    out.pop(); // the `Z`
    if let Some(dot) = out.find('.') {
        out.truncate(dot + 7);
        while out.ends_with('0') {
            out.pop();
        }
        if out.ends_with('.') {
            out.pop();
        }
    }
    if offset == 0 {
        out.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let a = offset.unsigned_abs();
        out.push_str(&format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60));
    }
    out
}

/// One or more `[SD-ID (SP PARAM-NAME="value")*]` elements.
fn structured_data<'a>(c: &mut Cursor<'a>) -> Result<Vec<SdElement<'a>>, ParseError> {
    let mut elements: Vec<SdElement<'a>> = Vec::new();
    while c.eat(b'[') {
        let id = sd_name(c).ok_or(ParseError::StructuredData)?;
        if elements.iter().any(|(e, _)| *e == id) {
            return Err(ParseError::DuplicateSdId);
        }
        let mut params = Vec::new();
        while c.eat(b' ') {
            let name = sd_name(c).ok_or(ParseError::StructuredData)?;
            if !c.eat(b'=') || !c.eat(b'"') {
                return Err(ParseError::StructuredData);
            }
            let start = c.i;
            let mut escaped: Option<Vec<u8>> = None;
            loop {
                match c.peek() {
                    None | Some(b']') => return Err(ParseError::StructuredData),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        let value = escaped.get_or_insert_with(|| c.b[start..c.i].to_vec());
                        c.i += 1;
                        match c.peek() {
                            Some(e @ (b'"' | b'\\' | b']')) => {
                                value.push(e);
                                c.i += 1;
                            }
                            _ => value.push(b'\\'),
                        }
                    }
                    Some(other) => {
                        if let Some(value) = &mut escaped {
                            value.push(other);
                        }
                        c.i += 1;
                    }
                }
            }
            let value = match escaped {
                Some(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
                None => lossy(&c.b[start..c.i]),
            };
            c.i += 1; // the closing quote
            params.push((name, value));
        }
        if !c.eat(b']') {
            return Err(ParseError::StructuredData);
        }
        elements.push((id, params));
    }
    if elements.is_empty() {
        return Err(ParseError::StructuredData);
    }
    Ok(elements)
}

/// SD-NAME: 1 to 32 printable characters except `=`, space, `]` and `"`.
fn sd_name<'a>(c: &mut Cursor<'a>) -> Option<Cow<'a, str>> {
    let rest = c.rest();
    let n = rest
        .iter()
        .take_while(|&&b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'))
        .count();
    if n == 0 || n > 32 {
        return None;
    }
    c.i += n;
    Some(lossy(&rest[..n]))
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Parses one RFC 3164 message: `<PRI>Mmm dd hh:mm:ss [HOSTNAME ]TAG[[PID]]: MSG`. `now` (Unix
/// nanoseconds) gives the year the timestamp lacks.
pub fn parse_rfc3164(frame: &[u8], now: i64) -> Result<Message<'_>, ParseError> {
    let mut c = Cursor { b: frame, i: 0 };
    let priority = c.priority()?;
    while c.eat(b' ') {}
    let rest = c.rest();
    if rest.len() < 15 {
        return Err(ParseError::Timestamp);
    }
    let timestamp = rfc3164_timestamp(&rest[..15], now).ok_or(ParseError::Timestamp)?;
    c.i += 15;
    if !c.eat(b' ') {
        return Err(ParseError::NoMessage);
    }
    while c.eat(b' ') {}
    let mut m = Message {
        priority,
        timestamp: Some(timestamp),
        ..Message::default()
    };
    // A first word that could be a hostname (no `:`) and has more after it is the hostname, as the
    // go-syslog machine resolves the ambiguity.
    let start = c.i;
    let word = c.token();
    let mut body = &frame[start..];
    if !word.is_empty() && word.len() <= 255 && printable(word) && !word.contains(&b':') {
        let after = &frame[c.i..];
        let trimmed = &after[after.iter().take_while(|&&b| b == b' ').count()..];
        if !after.is_empty() && !trimmed.is_empty() {
            m.hostname = Some(lossy(word));
            body = trimmed;
        }
    }
    if body.is_empty() {
        return Err(ParseError::NoMessage);
    }
    match tag(body) {
        Some((app, proc_id, msg)) if !msg.is_empty() => {
            m.app_name = Some(lossy(app));
            m.proc_id = proc_id.map(lossy);
            m.message = Some(lossy(msg));
        }
        Some((app, proc_id, _)) => {
            m.app_name = Some(lossy(app));
            m.proc_id = proc_id.map(lossy);
            m.message = Some(lossy(body));
        }
        None => m.message = Some(lossy(body)),
    }
    Ok(m)
}

/// A parsed `TAG[CONTENT]: MSG`: tag, content, message.
type Tagged<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8]);

/// `TAG[CONTENT]: MSG` or `TAG: MSG`: the tag (1 to 48 printable characters but space, `:` and `[`),
/// the bracketed content (the process id) and the message after `": "`.
fn tag(body: &[u8]) -> Option<Tagged<'_>> {
    let n = body
        .iter()
        .take_while(|&&b| (33..=126).contains(&b) && !matches!(b, b':' | b'['))
        .count();
    if n == 0 || n > 48 {
        return None;
    }
    let mut rest = &body[n..];
    let mut content = None;
    if rest.first() == Some(&b'[') {
        let close = rest.iter().position(|&b| b == b']')?;
        let inner = &rest[1..close];
        if inner.contains(&b'[') {
            return None;
        }
        content = Some(inner);
        rest = &rest[close + 1..];
    }
    let msg = rest.strip_prefix(b": ")?;
    Some((&body[..n], content, msg))
}

/// `Mmm dd hh:mm:ss` (day space-padded: `Jan  5`), in UTC as Go's `time.Stamp` reads it, in the year
/// of `now` (or the year before, when that date would be more than a day after `now`).
fn rfc3164_timestamp(s: &[u8], now: i64) -> Option<i64> {
    let month = MONTHS.iter().position(|m| &s[..3] == *m)? as i8 + 1;
    let day = match (s[4], s[5]) {
        (b' ', d @ b'1'..=b'9') => d - b'0',
        (a @ b'1'..=b'3', b @ b'0'..=b'9') => (a - b'0') * 10 + (b - b'0'),
        _ => return None,
    };
    if s[3] != b' ' || s[6] != b' ' || s[9] != b':' || s[12] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<i8> {
        let (a, b) = (s[i], s[i + 1]);
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| ((a - b'0') * 10 + (b - b'0')) as i8)
    };
    let (h, mi, sec) = (two(7)?, two(10)?, two(13)?);
    let now_ts = jiff::Timestamp::from_nanosecond(i128::from(now)).ok()?;
    let year = now_ts.to_zoned(jiff::tz::TimeZone::UTC).year();
    let at = |year: i16| -> Option<i64> {
        let dt = jiff::civil::DateTime::new(year, month, day as i8, h, mi, sec, 0).ok()?;
        let ts = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
        i64::try_from(ts.as_nanosecond()).ok()
    };
    let this_year = at(year);
    match this_year {
        Some(t) if t <= now + 86_400 * 1_000_000_000 => Some(t),
        // Feb 29 of a leap year read in a later year, or a December stamp read in January.
        _ => at(year - 1).or(this_year),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_770_037_200_000_000_000; // 2026-02-02T13:00:00Z

    #[test]
    fn rfc5424_fields_as_go_syslog_reads_them() {
        let m = parse_rfc5424(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 123 ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Appl\\\"ication\"][x@1 a=\"\"] An application event",
        )
        .unwrap();
        assert_eq!(
            (m.facility(), m.severity(), m.version),
            ("local4", "notice", 1)
        );
        assert_eq!(m.timestamp, Some(1_065_910_455_003_000_000));
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(m.app_name.as_deref(), Some("evntslog"));
        assert_eq!(m.proc_id.as_deref(), Some("123"));
        assert_eq!(m.msg_id.as_deref(), Some("ID47"));
        let sd: Vec<(&str, Vec<(&str, &str)>)> = m
            .structured_data
            .iter()
            .map(|(id, ps)| (&**id, ps.iter().map(|(k, v)| (&**k, &**v)).collect()))
            .collect();
        assert_eq!(
            sd,
            [
                (
                    "exampleSDID@32473",
                    vec![("iut", "3"), ("eventSource", "Appl\"ication")]
                ),
                ("x@1", vec![("a", "")])
            ]
        );
        assert!(matches!(m.structured_data[0].1[0].1, Cow::Borrowed(_)));
        assert!(matches!(m.structured_data[0].1[1].1, Cow::Owned(_)));
        assert_eq!(m.message.as_deref(), Some("An application event"));
        assert_eq!(
            m.to_rfc5424(),
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 123 ID47 [exampleSDID@32473 eventSource=\"Appl\\\"ication\" iut=\"3\"][x@1 a=\"\"] An application event"
        );
    }

    #[test]
    fn rfc5424_nil_values_and_empty_messages() {
        let m = parse_rfc5424(b"<0>1 - - - - - -").unwrap();
        assert_eq!((m.facility(), m.severity()), ("kern", "emergency"));
        assert_eq!((m.timestamp, &m.hostname, &m.message), (None, &None, &None));
        assert_eq!(parse_rfc5424(b"<13>1 - - - - - - ").unwrap().message, None);
        assert_eq!(
            parse_rfc5424(b"<13>1 - h a - - - \xff bytes")
                .unwrap()
                .message
                .as_deref(),
            Some("\u{fffd} bytes")
        );
        assert_eq!(m.to_rfc5424(), "<0>1 - - - - - -");
    }

    #[test]
    fn rfc5424_timestamps_are_rewritten_as_go_formats_them() {
        for (written, formatted) in [
            (
                "2003-08-24T05:14:15.000003-07:00",
                "2003-08-24T05:14:15.000003-07:00",
            ),
            (
                "2026-12-03T16:46:05.074610+00:00",
                "2026-12-03T16:46:05.07461Z",
            ),
            ("2026-12-03T16:46:05.000+05:30", "2026-12-03T16:46:05+05:30"),
            ("2026-12-03T16:46:05Z", "2026-12-03T16:46:05Z"),
        ] {
            let text = format!("<13>1 {written} - - - - -");
            let m = parse_rfc5424(text.as_bytes()).unwrap();
            assert_eq!(m.to_rfc5424(), format!("<13>1 {formatted} - - - - -"));
        }
    }

    #[test]
    fn rfc5424_errors_are_reported_by_part() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"hello", ParseError::Priority),
            (b"<192>1 - - - - - -", ParseError::Priority),
            (b"<013>1 - - - - - -", ParseError::Priority),
            (b"<13>0 - - - - - -", ParseError::Version),
            (b"<13>Jan  1 00:00:00 host app: x", ParseError::Version),
            (b"<13>1 2003-10-11 h a p m -", ParseError::Timestamp),
            (
                b"<13>1 2003-10-11T22:14:15.0000001Z h a p m -",
                ParseError::Timestamp,
            ),
            (
                b"<13>1 2003-02-30T22:14:15Z h a p m -",
                ParseError::Timestamp,
            ),
            (b"<13>1 - h a p m", ParseError::StructuredData),
            (b"<13>1 - h a p m [x", ParseError::StructuredData),
            (b"<13>1 - h a p m [x a=1]", ParseError::StructuredData),
            (b"<13>1 - h a p m [x][x]", ParseError::DuplicateSdId),
            (b"<13>1 - h a p m -x", ParseError::StructuredData),
            (
                b"<13>1 - h aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa p m -",
                ParseError::AppName,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_rfc5424(input).err(),
                Some(*want),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn rfc3164_as_logger_and_docker_send_it() {
        let m = parse_rfc3164(b"<13>Feb  2 12:59:58 myhost alice: hello world", NOW).unwrap();
        assert_eq!((m.facility(), m.severity()), ("user", "notice"));
        assert_eq!(m.timestamp, Some(NOW - 2_000_000_000));
        assert_eq!(m.hostname.as_deref(), Some("myhost"));
        assert_eq!(m.app_name.as_deref(), Some("alice"));
        assert_eq!(m.proc_id, None);
        assert_eq!(m.message.as_deref(), Some("hello world"));

        let m = parse_rfc3164(b"<30>Feb 12 10:00:00 web1 nginx[4242]: a: b", NOW).unwrap();
        assert_eq!(
            (m.app_name.as_deref(), m.proc_id.as_deref()),
            (Some("nginx"), Some("4242"))
        );
        assert_eq!(m.message.as_deref(), Some("a: b"));
        assert_eq!(m.facility(), "daemon");

        // No hostname: the tag comes first.
        let m = parse_rfc3164(b"<13>Feb  2 12:00:00 cron[1]: job done", NOW).unwrap();
        assert_eq!((m.hostname, m.app_name.as_deref()), (None, Some("cron")));
        // No tag: all of it is the message.
        let m = parse_rfc3164(b"<13>Feb  2 12:00:00 host just text", NOW).unwrap();
        assert_eq!(
            (m.hostname.as_deref(), m.app_name, m.message.as_deref()),
            (Some("host"), None, Some("just text"))
        );
    }

    #[test]
    fn rfc3164_year_is_guessed_and_bad_stamps_refused() {
        // December read on 2 February 2026: December 2025.
        let m = parse_rfc3164(b"<13>Dec 31 23:00:00 h a: x", NOW).unwrap();
        assert_eq!(m.timestamp, Some(1_767_222_000_000_000_000));
        for bad in [
            &b"<13>Feb 02 12:00:00 h a: x"[..],
            b"<13>Foo  2 12:00:00 h a: x",
            b"<13>Feb  2 12:00 h a: x",
            b"<13>Feb  2 12:00:00",
            b"<13>2026-02-02T12:00:00Z h a: x",
        ] {
            assert!(
                parse_rfc3164(bad, NOW).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_rfc3164(b"no pri", NOW).err(),
            Some(ParseError::Priority)
        );
    }
}
