//! A validating scanner for the `json` stage's fast path: it checks a whole JSON text against the
//! grammar (RFC 8259, as Go's `json.Unmarshal` does before it decodes anything) and hands back each
//! member of the top-level object as its key and the text of its value, without building values.
//!
//! The stage then converts only the values its expressions read, so a line's other fields cost a
//! validating skip: strings are crossed 8 bytes at a time, looking for the closing quote, a
//! backslash or a control character in one word (the SWAR tests of "Bit Twiddling Hacks").
//!
//! Differences from Go, where they cannot matter for log lines: nesting deeper than
//! [`MAX_DEPTH`] is malformed (serde_json's limit, which the stage used before; Go allows 10000), and
//! a number too large for a float64 in a field no expression reads is not an error (Go fails the
//! whole line).

use std::borrow::Cow;

/// The input is not valid JSON, or not an object (or `null`) at the top.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

const MAX_DEPTH: u32 = 128;

/// A JSON string's text between its quotes; `escaped` when it holds a backslash escape.
#[derive(Debug, Clone, Copy)]
pub struct RawStr<'a> {
    pub raw: &'a str,
    pub escaped: bool,
}

impl<'a> RawStr<'a> {
    /// The string's value: the raw text itself unless it has escapes.
    pub fn decode(&self) -> Cow<'a, str> {
        if self.escaped {
            Cow::Owned(unescape(self.raw))
        } else {
            Cow::Borrowed(self.raw)
        }
    }
}

/// Scan `input`, which must be a JSON object or `null` with only whitespace around it; `member` is
/// called with each top-level member's key, its value's text and whether that text holds a
/// backslash escape, in order (duplicates included: the last one wins when the caller keeps the
/// latest).
pub fn scan_object<'a>(
    input: &'a str,
    mut member: impl FnMut(RawStr<'a>, &'a str, bool),
) -> Result<(), Malformed> {
    let mut s = Scanner {
        text: input,
        bytes: input.as_bytes(),
        at: 0,
    };
    s.ws();
    match s.peek() {
        Some(b'n') => s.literal(b"null")?,
        Some(b'{') => {
            s.at += 1;
            s.ws();
            if s.peek() == Some(b'}') {
                s.at += 1;
            } else {
                loop {
                    let key = s.string()?;
                    s.ws();
                    s.expect(b':')?;
                    s.ws();
                    let start = s.at;
                    let escaped = s.value(1)?;
                    member(key, &input[start..s.at], escaped);
                    s.ws();
                    if s.comma_or(b'}')? {
                        break;
                    }
                    s.ws();
                }
            }
        }
        _ => return Err(Malformed),
    }
    s.ws();
    if s.at == s.bytes.len() {
        Ok(())
    } else {
        Err(Malformed)
    }
}

/// Whether `raw` (a value text [`scan_object`] returned, with its `escaped` flag) is a string, and
/// its content.
pub fn as_string(raw: &str, escaped: bool) -> Option<RawStr<'_>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    Some(RawStr {
        raw: inner,
        escaped,
    })
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `w` below `n` (n <= 128) is set. A byte right above a flagged one
/// may be flagged too (the subtraction's borrow), but the lowest flagged byte is always exact.
#[inline]
fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS
}

/// The high bit of every byte of `w` equal to `b` is set (the lowest exactly, as in [`below`]).
#[inline]
fn equal(w: u64, b: u8) -> u64 {
    below(w ^ (ONES * u64::from(b)), 1)
}

/// Where a string's plain run starting at `i` ends: the first quote, backslash or control character
/// (or the end of the input). On x86_64, 16 bytes are tested at once with SSE2 (part of every
/// x86_64 CPU); elsewhere, and for the last bytes, 8 at a time in a `u64`, where the first special
/// byte is the lowest flagged one.
#[inline]
fn plain_run_end(b: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        match sse2::plain_run_end(b, i) {
            Ok(found) => return found,
            Err(tail) => i = tail,
        }
    }
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let special = equal(w, b'"') | equal(w, b'\\') | below(w, 0x20);
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b
        .get(i)
        .is_some_and(|&c| c != b'"' && c != b'\\' && c >= 0x20)
    {
        i += 1;
    }
    i
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    /// As `super::plain_run_end` for whole 16-byte blocks: `Ok` with the first special byte, or
    /// `Err` with where the last, shorter block starts.
    #[inline]
    pub fn plain_run_end(b: &[u8], mut i: usize) -> Result<usize, usize> {
        // SAFETY: SSE2 is in the x86_64 baseline, so these intrinsics are always available; every
        // load reads 16 bytes at `i` with `i + 16 <= b.len()`, unaligned loads being allowed.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let space = _mm_set1_epi8(0x20);
            while i + 16 <= b.len() {
                let x = _mm_loadu_si128(b.as_ptr().add(i).cast::<__m128i>());
                let quoting = _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash));
                // max(x, 0x20) == x exactly where x >= 0x20 (unsigned): not a control character.
                let printable = _mm_cmpeq_epi8(_mm_max_epu8(x, space), x);
                let special = _mm_movemask_epi8(quoting) as u32
                    | (!_mm_movemask_epi8(printable) as u32 & 0xffff);
                if special != 0 {
                    return Ok(i + special.trailing_zeros() as usize);
                }
                i += 16;
            }
        }
        Err(i)
    }
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), Malformed> {
        if self.peek() == Some(b) {
            self.at += 1;
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// After a member or element: `,` (false: more follow) or `close` (true: done).
    fn comma_or(&mut self, close: u8) -> Result<bool, Malformed> {
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(false)
            }
            Some(b) if b == close => {
                self.at += 1;
                Ok(true)
            }
            _ => Err(Malformed),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Malformed> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// A string starting at the current `"`; returns its content.
    fn string(&mut self) -> Result<RawStr<'a>, Malformed> {
        self.expect(b'"')?;
        let start = self.at;
        let mut escaped = false;
        let mut i = start;
        let b = self.bytes;
        loop {
            i = plain_run_end(b, i);
            match b.get(i) {
                Some(b'"') => {
                    self.at = i + 1;
                    return Ok(RawStr {
                        raw: &self.text[start..i],
                        escaped,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    match b.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            let hex = b.get(i + 2..i + 6).ok_or(Malformed)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Malformed);
                            }
                            i += 6;
                        }
                        _ => return Err(Malformed),
                    }
                }
                // A control character, or the end of the input.
                _ => return Err(Malformed),
            }
        }
    }

    fn digits(&mut self) -> Result<(), Malformed> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        if self.at == start {
            Err(Malformed)
        } else {
            Ok(())
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<(), Malformed> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits()?,
            _ => return Err(Malformed),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.digits()?;
        }
        Ok(())
    }

    /// Any value, checked and skipped; true for a string with escapes.
    fn value(&mut self, depth: u32) -> Result<bool, Malformed> {
        match self.peek() {
            Some(b'"') => return self.string().map(|s| s.escaped),
            Some(b'{') => self.container(depth, b'}', true),
            Some(b'[') => self.container(depth, b']', false),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(Malformed),
        }?;
        Ok(false)
    }

    /// An object (`keyed`) or array after its opening bracket.
    fn container(&mut self, depth: u32, close: u8, keyed: bool) -> Result<(), Malformed> {
        if depth >= MAX_DEPTH {
            return Err(Malformed);
        }
        self.at += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(());
        }
        loop {
            if keyed {
                self.string()?;
                self.ws();
                self.expect(b':')?;
                self.ws();
            }
            self.value(depth + 1)?;
            self.ws();
            if self.comma_or(close)? {
                return Ok(());
            }
            self.ws();
        }
    }
}

/// The value of string content with escapes (already checked by the scanner). A `\u` escape of a
/// lone UTF-16 surrogate becomes U+FFFD, as in Go.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let b = rest.as_bytes();
        let (c, used) = match b[i + 1] {
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => {
                let unit = hex4(&rest[i + 2..]);
                match unit {
                    0xd800..=0xdbff => match rest[i + 6..].strip_prefix("\\u").map(hex4) {
                        Some(low @ 0xdc00..=0xdfff) => {
                            let c = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                            (char::from_u32(c).unwrap_or('\u{fffd}'), 12)
                        }
                        _ => ('\u{fffd}', 6),
                    },
                    _ => (char::from_u32(unit).unwrap_or('\u{fffd}'), 6),
                }
            }
            other => (char::from(other), 2),
        };
        out.push(c);
        rest = &rest[i + used..];
    }
    out.push_str(rest);
    out
}

/// Four hex digits at the start of `s` (the scanner checked them).
fn hex4(s: &str) -> u32 {
    s.get(..4)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0xfffd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(input: &str) -> Result<Vec<(String, String)>, Malformed> {
        let mut out = Vec::new();
        scan_object(input, |k, v, _| {
            out.push((k.decode().into_owned(), v.to_owned()))
        })?;
        Ok(out)
    }

    #[test]
    fn splits_the_top_level_object() {
        let got =
            members(r#" { "a" : "x\"y" , "b":[1, {"c": null}], "k\u00e9":-1.5e+3,"t":true } "#);
        assert_eq!(
            got.unwrap(),
            vec![
                ("a".into(), r#""x\"y""#.into()),
                ("b".into(), r#"[1, {"c": null}]"#.into()),
                ("ké".into(), "-1.5e+3".into()),
                ("t".into(), "true".into()),
            ]
        );
        assert_eq!(members("null").unwrap(), vec![]);
        assert_eq!(members("{}").unwrap(), vec![]);
    }

    /// The scanner accepts exactly what serde_json accepts as an object or null (both follow RFC
    /// 8259), on valid documents and on each of them cut or damaged.
    #[test]
    fn agrees_with_serde_json_on_validity() {
        let docs = [
            r#"{"a":1,"b":[true,false,null,{"c":"d"}],"e":{"f":[]},"g":-0.5e-7,"h":"\u00e9\n\t\\\/"}"#,
            r#"{"time_local": "02/Feb/2026:22:00:00 +0900", "status": "201", "request_time": "0.961"}"#,
            "{\"long\":\"0123456789abcdef0123456789abcdef\u{e9}\u{2028}\",\"n\":0}",
            r#"{"x":[[[[]]]], "y": 10, "z": 1E5, "w": 0.0}"#,
            "null",
            "{}",
        ];
        let bad = [
            "",
            "[]",
            "\"s\"",
            "1",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":-}",
            "{\"a\":1e}",
            "{\"a\":tru}",
            "{\"a\":nul}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12g4\"}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":1} x",
            "{\"a\":[1,]}",
            "{\"a\":[1 2]}",
            "{\"a\" 1}",
            "{'a':1}",
            "{\"a\":+1}",
            "nul",
        ];
        let serde_ok = |s: &str| {
            matches!(
                serde_json::from_str::<serde_json::Value>(s),
                Ok(serde_json::Value::Object(_) | serde_json::Value::Null)
            )
        };
        let mut inputs: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
        for doc in docs {
            inputs.push(doc.to_string());
            for cut in 0..doc.len() {
                if doc.is_char_boundary(cut) {
                    inputs.push(doc[..cut].to_string());
                }
            }
            for (i, c) in doc.char_indices() {
                for with in ["\"", ",", "}", "]", ":", "\\", "\u{1}", " ", "x", "0"] {
                    inputs.push(format!("{}{with}{}", &doc[..i], &doc[i + c.len_utf8()..]));
                }
            }
        }
        for input in &inputs {
            assert_eq!(
                scan_object(input, |_, _, _| {}).is_ok(),
                serde_ok(input),
                "{input:?}"
            );
        }
    }

    /// The word-at-a-time search finds the same byte as a byte-by-byte one, wherever the special
    /// byte sits in or across 8- and 16-byte blocks, with UTF-8 bytes (>= 0x80) around it.
    #[test]
    fn plain_run_end_finds_the_first_special_byte() {
        let naive = |b: &[u8], i: usize| {
            (i..b.len())
                .find(|&j| matches!(b[j], b'"' | b'\\' | 0..=0x1f))
                .unwrap_or(b.len())
        };
        for len in 0..40 {
            for special in [b'"', b'\\', 0x00, 0x1f, 0x0a] {
                for at in 0..=len {
                    for filler in [b'a', 0x20, 0x7f, 0x80, 0xe9] {
                        let mut b = vec![filler; len];
                        if at < len {
                            b[at] = special;
                        }
                        for start in [0, 1, 3] {
                            let start = start.min(len);
                            assert_eq!(
                                plain_run_end(&b, start),
                                naive(&b, start),
                                "len {len} special {special:#x} at {at} filler {filler:#x} from {start}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn depth_is_limited_as_serde_json_limits_it() {
        let deep = |n: usize| format!("{{\"a\":{}{}}}", "[".repeat(n), "]".repeat(n));
        assert!(scan_object(&deep(100), |_, _, _| {}).is_ok());
        assert_eq!(scan_object(&deep(200), |_, _, _| {}), Err(Malformed));
    }

    #[test]
    fn unescapes_like_go() {
        let cases = [
            (r#"a\"b\\c\/d"#, "a\"b\\c/d"),
            (r#"\b\f\n\r\t"#, "\u{8}\u{c}\n\r\t"),
            (r#"\u00e9\u2028"#, "é\u{2028}"),
            (r#"\ud83d\ude00!"#, "😀!"),
            // Lone surrogates become U+FFFD, as Go decodes them.
            (r#"\ud83dx"#, "\u{fffd}x"),
            (r#"\ude00"#, "\u{fffd}"),
        ];
        for (raw, want) in cases {
            assert_eq!(unescape(raw), want, "{raw}");
        }
        let s = as_string(r#""plain""#, false).unwrap();
        assert_eq!((s.raw, s.escaped), ("plain", false));
        assert!(as_string("12", false).is_none());
    }
}
