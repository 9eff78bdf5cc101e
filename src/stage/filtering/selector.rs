//! The LogQL subset a `match` stage selects with (Promtail's `clients/pkg/logentry/logql`): a stream
//! selector `{name op "value", ...}` with `=`, `!=`, `=~`, `!~`, then any number of line filters
//! `|= "s"`, `!= "s"`, `|~ "re"`, `!~ "re"`.
//!
//! * Label regexes are fully anchored (Prometheus matchers, `^(?s:re)$`); a label the entry lacks
//!   reads as `""`. Line regexes are unanchored Go regexes; `|=` and `!=` are substring tests.
//! * Strings are Go string literals with Go's escapes (`\"`, `\\`, `\n`, `\x41`, `\u00e9`, `\101`).
//!   Backtick raw strings are accepted too, as Loki's LogQL accepts them (Promtail's lexer does not).
//! * Go's lexer skips `//` and `/* */` comments; so does this one.
//! * LogQL's label filters (`| json`, `| level="x"`) are not part of it, in Promtail either.

use memchr::memmem::Finder;
use regex::Regex;

use crate::goregex::compile as compile_go_regex;
use crate::stage::ItemLabels;

/// A parsed selector, ready to test entries.
#[derive(Debug)]
pub struct Selector {
    matchers: Vec<LabelMatcher>,
    filters: Vec<LineFilter>,
}

#[derive(Debug)]
struct LabelMatcher {
    name: String,
    test: LabelTest,
}

#[derive(Debug)]
enum LabelTest {
    Equal(String),
    NotEqual(String),
    Matches(Regex),
    NotMatches(Regex),
}

#[derive(Debug)]
enum LineFilter {
    Contains(Finder<'static>),
    NotContains(Finder<'static>),
    Matches(Regex),
    NotMatches(Regex),
}

impl Selector {
    /// Parse `text`; errors read like Promtail's (`parse error at line 1, col 6: ...`).
    pub fn parse(text: &str) -> Result<Selector, String> {
        Parser {
            lexer: Lexer::new(text),
        }
        .selector()
    }

    /// Whether an entry with `labels` and `line` is selected.
    pub fn matches(&self, labels: &ItemLabels, line: &str) -> bool {
        self.matchers.iter().all(|m| {
            let value = labels.get(&m.name).unwrap_or("");
            match &m.test {
                LabelTest::Equal(v) => value == v,
                LabelTest::NotEqual(v) => value != v,
                LabelTest::Matches(re) => re.is_match(value),
                LabelTest::NotMatches(re) => !re.is_match(value),
            }
        }) && self.filters.iter().all(|f| match f {
            LineFilter::Contains(s) => s.find(line.as_bytes()).is_some(),
            LineFilter::NotContains(s) => s.find(line.as_bytes()).is_none(),
            LineFilter::Matches(re) => re.is_match(line),
            LineFilter::NotMatches(re) => !re.is_match(line),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    OpenBrace,
    CloseBrace,
    Comma,
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`
    Re,
    /// `!~`
    Nre,
    /// `|=`
    PipeExact,
    /// `|~`
    PipeMatch,
    Ident(String),
    Str(String),
    /// Anything the grammar has no use for, as written.
    Other(String),
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::OpenBrace => "{".into(),
            Tok::CloseBrace => "}".into(),
            Tok::Comma => ",".into(),
            Tok::Eq => "=".into(),
            Tok::Neq => "!=".into(),
            Tok::Re => "=~".into(),
            Tok::Nre => "!~".into(),
            Tok::PipeExact => "|=".into(),
            Tok::PipeMatch => "|~".into(),
            Tok::Ident(s) => format!("identifier {s}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Other(s) => format!("{s:?}"),
            Tok::End => "end of input".into(),
        }
    }
}

/// A token and where it starts (1-based line and column, in characters, as Go's text/scanner counts).
struct Token {
    tok: Tok,
    line: usize,
    col: usize,
}

struct Lexer<'a> {
    rest: &'a str,
    line: usize,
    col: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            rest: text,
            line: 1,
            col: 1,
        }
    }

    fn error(&self, line: usize, col: usize, msg: impl std::fmt::Display) -> String {
        format!("parse error at line {line}, col {col}: {msg}")
    }

    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.rest = &self.rest[c.len_utf8()..];
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    /// Skip whitespace and comments.
    fn skip(&mut self) -> Result<(), String> {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\n' | '\r') => {
                    self.bump();
                }
                Some('/') if self.rest.starts_with("//") => {
                    while !matches!(self.peek(), None | Some('\n')) {
                        self.bump();
                    }
                }
                Some('/') if self.rest.starts_with("/*") => {
                    let (line, col) = (self.line, self.col);
                    self.bump();
                    self.bump();
                    loop {
                        if self.rest.starts_with("*/") {
                            self.bump();
                            self.bump();
                            break;
                        }
                        if self.bump().is_none() {
                            return Err(self.error(line, col, "comment not terminated"));
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next(&mut self) -> Result<Token, String> {
        self.skip()?;
        let (line, col) = (self.line, self.col);
        let at = |tok| Token { tok, line, col };
        let Some(c) = self.bump() else {
            return Ok(at(Tok::End));
        };
        let two = |lexer: &mut Self, second: char, yes: Tok, no: Tok| {
            if lexer.peek() == Some(second) {
                lexer.bump();
                yes
            } else {
                no
            }
        };
        let tok = match c {
            '{' => Tok::OpenBrace,
            '}' => Tok::CloseBrace,
            ',' => Tok::Comma,
            '=' => two(self, '~', Tok::Re, Tok::Eq),
            '!' => match self.peek() {
                Some('=') => {
                    self.bump();
                    Tok::Neq
                }
                Some('~') => {
                    self.bump();
                    Tok::Nre
                }
                _ => Tok::Other("!".into()),
            },
            '|' => match self.peek() {
                Some('=') => {
                    self.bump();
                    Tok::PipeExact
                }
                Some('~') => {
                    self.bump();
                    Tok::PipeMatch
                }
                _ => Tok::Other("|".into()),
            },
            '"' => Tok::Str(self.quoted(line, col)?),
            '`' => {
                let Some(end) = self.rest.find('`') else {
                    return Err(self.error(line, col, "literal not terminated"));
                };
                let raw = self.rest[..end].to_owned();
                for _ in raw.chars() {
                    self.bump();
                }
                self.bump();
                // Go drops carriage returns from raw strings.
                Tok::Str(raw.replace('\r', ""))
            }
            c if c == '_' || c.is_alphabetic() => {
                let mut ident = c.to_string();
                while let Some(c) = self.peek().filter(|c| *c == '_' || c.is_alphanumeric()) {
                    ident.push(c);
                    self.bump();
                }
                Tok::Ident(ident)
            }
            c if c.is_ascii_digit() => {
                let mut number = c.to_string();
                while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '.') {
                    number.push(c);
                    self.bump();
                }
                Tok::Other(number)
            }
            c => Tok::Other(c.to_string()),
        };
        Ok(at(tok))
    }

    /// The rest of a `"`-quoted Go string literal, unquoted.
    fn quoted(&mut self, line: usize, col: usize) -> Result<String, String> {
        let mut bytes = Vec::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(self.error(line, col, "literal not terminated"));
            };
            match c {
                '"' => break,
                '\n' => return Err(self.error(line, col, "literal not terminated")),
                '\\' => self.escape(&mut bytes, line, col)?,
                c => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        String::from_utf8(bytes)
            .map_err(|_| self.error(line, col, "string is not valid UTF-8 once unescaped"))
    }

    /// One escape after a backslash, as Go's `strconv.Unquote` reads it in a `"` string.
    fn escape(&mut self, out: &mut Vec<u8>, line: usize, col: usize) -> Result<(), String> {
        let bad = |l: &Self| l.error(line, col, "invalid char escape");
        let c = self.bump().ok_or_else(|| bad(self))?;
        let simple = match c {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return Ok(());
        }
        let (digits, radix) = match c {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (3, 8),
            _ => return Err(bad(self)),
        };
        let mut text = String::new();
        if radix == 8 {
            text.push(c);
        }
        while text.len() < digits {
            match self.bump() {
                Some(d) if d.is_digit(radix) => text.push(d),
                _ => return Err(bad(self)),
            }
        }
        let value = u32::from_str_radix(&text, radix).map_err(|_| bad(self))?;
        match c {
            'x' => out.push(value as u8),
            'u' | 'U' => {
                let ch = char::from_u32(value).ok_or_else(|| bad(self))?;
                out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
            }
            _ => out.push(u8::try_from(value).map_err(|_| bad(self))?),
        }
        Ok(())
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
}

impl Parser<'_> {
    fn unexpected(&self, token: &Token, expecting: &str) -> String {
        self.lexer.error(
            token.line,
            token.col,
            format!(
                "syntax error: unexpected {}, expecting {expecting}",
                token.tok.describe()
            ),
        )
    }

    fn string(&mut self) -> Result<String, String> {
        let token = self.lexer.next()?;
        match token.tok {
            Tok::Str(s) => Ok(s),
            _ => Err(self.unexpected(&token, "a quoted string")),
        }
    }

    fn selector(&mut self) -> Result<Selector, String> {
        let token = self.lexer.next()?;
        if token.tok != Tok::OpenBrace {
            return Err(self.unexpected(&token, "{"));
        }
        let mut matchers = Vec::new();
        loop {
            let token = self.lexer.next()?;
            let Tok::Ident(name) = token.tok else {
                return Err(self.unexpected(&token, "a label name"));
            };
            let op = self.lexer.next()?;
            let value = match op.tok {
                Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre => self.string()?,
                _ => return Err(self.unexpected(&op, "=, !=, =~ or !~")),
            };
            let regex = |v: &str| {
                crate::goregex::compile_anchored(v).map_err(|e| {
                    let v = crate::goregex::shown(v);
                    format!("invalid regex {v} for label {name:?}: {e}")
                })
            };
            let test = match op.tok {
                Tok::Eq => LabelTest::Equal(value),
                Tok::Neq => LabelTest::NotEqual(value),
                Tok::Re => LabelTest::Matches(regex(&value)?),
                _ => LabelTest::NotMatches(regex(&value)?),
            };
            matchers.push(LabelMatcher { name, test });
            let token = self.lexer.next()?;
            match token.tok {
                Tok::Comma => continue,
                Tok::CloseBrace => break,
                _ => return Err(self.unexpected(&token, ", or }")),
            }
        }
        let mut filters = Vec::new();
        loop {
            let token = self.lexer.next()?;
            let op = match token.tok {
                Tok::End => break,
                Tok::PipeExact | Tok::Neq | Tok::PipeMatch | Tok::Nre => token.tok,
                _ => return Err(self.unexpected(&token, "|=, !=, |~, !~ or the end")),
            };
            let value = self.string()?;
            let regex = |v: &str| {
                compile_go_regex(v).map_err(|e| {
                    let v = crate::goregex::shown(v);
                    format!("invalid line filter regex {v}: {e}")
                })
            };
            filters.push(match op {
                Tok::PipeExact => LineFilter::Contains(Finder::new(value.as_bytes()).into_owned()),
                Tok::Neq => LineFilter::NotContains(Finder::new(value.as_bytes()).into_owned()),
                Tok::PipeMatch => LineFilter::Matches(regex(&value)?),
                _ => LineFilter::NotMatches(regex(&value)?),
            });
        }
        Ok(Selector { matchers, filters })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::LabelSet;

    fn labels(pairs: &[(&str, &str)]) -> ItemLabels {
        ItemLabels::Shared(LabelSet::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }

    /// Promtail's TestMatcher table (selector, labels, line "foo", selected?) plus escapes and comments.
    #[test]
    fn selects_like_promtail() {
        let foo_bar: &[(&str, &str)] = &[("foo", "bar")];
        let both: &[(&str, &str)] = &[("foo", "bar"), ("bar", "test")];
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, bool);
        let cases: &[Case] = &[
            (r#"{foo="bar"} |= "foo""#, foo_bar, "foo", true),
            (r#"{foo="bar"} |~ "foo""#, foo_bar, "foo", true),
            (r#"{foo="bar"} |= "bar""#, foo_bar, "foo", false),
            (r#"{foo="bar"} |~ "bar""#, foo_bar, "foo", false),
            (r#"{foo="bar"} != "bar""#, foo_bar, "foo", true),
            (r#"{foo="bar"} !~ "bar""#, foo_bar, "foo", true),
            (r#"{foo="bar"} != "foo""#, foo_bar, "foo", false),
            (r#"{foo="bar"}"#, foo_bar, "foo", true),
            (r#"{foo=""}"#, foo_bar, "foo", false),
            (r#"{foo=""}"#, &[], "foo", true),
            (r#"{foo!="bar"}"#, foo_bar, "foo", false),
            (r#"{foo="bar",bar!="test"}"#, foo_bar, "foo", true),
            (r#"{foo="bar",bar!="test"}"#, both, "foo", false),
            (r#"{foo="bar",bar=~"te.*"}"#, both, "foo", true),
            (r#"{foo="bar",bar!~"te.*"}"#, both, "foo", false),
            // Label regexes are anchored, line regexes are not.
            (r#"{foo=~"ba"}"#, foo_bar, "foo", false),
            (r#"{foo=~"b.*|x"}"#, foo_bar, "foo", true),
            (r#"{foo="bar"} |~ "o+""#, foo_bar, "foo", true),
            (
                r#"{app="promtail"} |~ ".*noisy error.*""#,
                &[("app", "promtail")],
                "a noisy error here",
                true,
            ),
            // Filters chain with AND, in order.
            (r#"{foo="bar"} |= "f" |= "o" != "x""#, foo_bar, "foo", true),
            (r#"{foo="bar"} |= "f" != "o""#, foo_bar, "foo", false),
            (r#"{foo="bar"} |= """#, foo_bar, "foo", true),
            // Go string escapes, raw strings, comments, spacing.
            (r#"{foo="b\x61r"} |= "\"q\"""#, foo_bar, r#"say "q""#, true),
            (r#"{foo="\u0062ar"} |= "\t""#, foo_bar, "a\tb", true),
            (r#"{foo="\142ar"}"#, foo_bar, "", true),
            ("{foo=`bar`} |~ `\\d+`", foo_bar, "id 42", true),
            ("{ foo = \"bar\" , }", foo_bar, "", false),
            ("/* c */ {foo=\"bar\"} // trailing", foo_bar, "", true),
            ("{ foo = \"bar\" }\n  |= \"x\"", foo_bar, "x", true),
        ];
        for (selector, pairs, line, want) in cases {
            match Selector::parse(selector) {
                Ok(s) => assert_eq!(s.matches(&labels(pairs), line), *want, "{selector}"),
                // `{ foo = "bar" , }` is a syntax error, as in Promtail.
                Err(e) => assert!(!want, "{selector}: {e}"),
            }
        }
    }

    #[test]
    fn rejects_bad_selectors_with_their_position() {
        let cases = [
            ("foo", "parse error at line 1, col 1: syntax error: unexpected identifier foo, expecting {"),
            ("{}", "col 2: syntax error: unexpected }, expecting a label name"),
            ("{", "col 2: syntax error: unexpected end of input, expecting a label name"),
            (r#"{app="foo}"#, "col 6: literal not terminated"),
            (r#"{foo="bar",}"#, "col 12: syntax error: unexpected }, expecting a label name"),
            (r#"{foo:"bar"}"#, "unexpected \":\", expecting =, !=, =~ or !~"),
            (r#"{foo=bar}"#, "unexpected identifier bar, expecting a quoted string"),
            (r#"{foo=1}"#, "unexpected \"1\", expecting a quoted string"),
            (r#"{foo="bar"} | json"#, "unexpected \"|\", expecting |=, !=, |~, !~ or the end"),
            (r#"{foo="bar"} |= bar"#, "unexpected identifier bar"),
            (r#"{foo="bar"} !~ "[]""#, "invalid line filter regex \"[]\""),
            (r#"{foo=~"("}"#, "invalid regex \"(\" for label \"foo\""),
            (r#"{foo="\q"}"#, "invalid char escape"),
            (r#"{foo="\'"}"#, "invalid char escape"),
            (r#"{foo="\xff"}"#, "not valid UTF-8"),
            ("{foo=\"a\nb\"}", "literal not terminated"),
            ("/* open", "comment not terminated"),
            ("{a=\"b\"}\n|= x", "parse error at line 2, col 4: syntax error: unexpected identifier x"),
        ];
        for (selector, want) in cases {
            let err = Selector::parse(selector).unwrap_err();
            assert!(err.contains(want), "{selector}: {err}");
        }
    }
}
