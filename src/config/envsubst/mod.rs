//! `-config.expand-env=true`: a faithful port of `github.com/drone/envsubst` v1.0.3, the library Promtail
//! runs over the raw config text before YAML parsing (compat reference §1.2).
//!
//! The port keeps drone's scanner/parser structure on purpose, because its quirks are observable and
//! existing configs depend on them:
//! * `$VAR` (no braces) is left alone; `$$` becomes `$`, so `$${1}` survives as `${1}`;
//! * outside `${...}`, `\\` becomes `\` and `\/` becomes `/` everywhere in the file, comments included;
//! * `${VAR-def}` is an error ("missing closing brace"), while `:-`, `:=`, `=`, `:?` and `:+` all mean
//!   "the value, or the default when empty" (no error, no assignment);
//! * bash-like functions: `${#V}`, `${V^^}`, `${V,,}`, `${V^}`, `${V,}`, `${V:pos:len}`, `${V#p}`,
//!   `${V##p}`, `${V%p}`, `${V%%p}`, `${V/a/b}`, `${V//a/b}`, `${V/#a/b}`, `${V/%a/b}`.
//!
//! Go strings are byte strings and drone slices them by byte, so the scanner works on bytes and decodes
//! runes the way Go's `utf8.DecodeRune` does. The one addition over drone: errors say where the failing
//! `${` starts (line and column in the original text).

mod funcs;

use funcs::eval;

/// Where and why expansion failed. The message is drone's own (e.g. "missing closing brace").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message} in {snippet:?}")]
pub struct EnvsubstError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The text from the failing `${` to the end of its line (at most 40 characters).
    pub snippet: String,
}

/// Expands `${...}` references in `text`, looking variables up with `lookup` (unset reads as empty).
pub fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, EnvsubstError> {
    let mut parser = Parser {
        s: Scanner::new(text),
    };
    let nodes = parser
        .parse_any()
        .map_err(|err| err.locate(text, &parser.s.removed))?;
    let mapper = |name: &str| lookup(name).unwrap_or_default();
    let mut out = Vec::with_capacity(text.len());
    for node in &nodes {
        out.extend_from_slice(&eval(node, &mapper));
    }
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// drone's parse errors, with the start of the innermost unfinished `${` (in scanner coordinates).
struct ParseError {
    kind: &'static str,
    open: Option<usize>,
}

const BAD_SUBSTITUTION: &str = "bad substitution";
const MISSING_CLOSING_BRACE: &str = "missing closing brace";
const PARSE_VARIABLE_NAME: &str = "unable to parse variable name";
const PARSE_FUNC_SUBSTITUTION: &str = "unable to parse substitution within function";
const PARSE_DEFAULT_FUNCTION: &str = "unable to parse default function";

impl ParseError {
    fn new(kind: &'static str) -> Self {
        ParseError { kind, open: None }
    }

    /// Maps the scanner position back to the original text (the scanner deletes escape bytes as it goes).
    fn locate(self, text: &str, removed: &[usize]) -> EnvsubstError {
        let pos = self.open.unwrap_or(0);
        let original = pos + removed.iter().filter(|&&r| r <= pos).count();
        let original = original.min(text.len());
        let before = &text.as_bytes()[..original];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let column = 1 + String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count();
        let rest = String::from_utf8_lossy(&text.as_bytes()[original..]);
        let snippet = rest.lines().next().unwrap_or("").chars().take(40).collect();
        EnvsubstError {
            line,
            column,
            message: self.kind.to_string(),
            snippet,
        }
    }
}

#[derive(Debug)]
enum Node {
    Text(Vec<u8>),
    /// `${param<name><args...>}`; `name` is the function's operator (`:-`, `//`, `^^`, ...), empty for `${V}`.
    Func {
        param: String,
        name: String,
        args: Vec<Node>,
    },
}

// ---- scanner (parse/scan.go) ----

const EOF: char = '\0';
const SCAN_IDENT: u8 = 1;
const SCAN_LBRACK: u8 = 2;
const SCAN_RBRACK: u8 = 4;
const SCAN_ESCAPE: u8 = 8;

#[derive(PartialEq, Eq)]
enum Token {
    Illegal,
    Eof,
    Ident,
    Lbrack,
    Rbrack,
}

type Accept = fn(char, usize) -> bool;

struct Scanner {
    buf: Vec<u8>,
    pos: usize,
    start: usize,
    width: usize,
    mode: u8,
    accept: Accept,
    /// Scanner positions of the escape bytes deleted so far, to report positions in the original text.
    removed: Vec<usize>,
}

/// Go's `utf8.DecodeRune`: an invalid or truncated sequence decodes as U+FFFD of width 1.
fn decode_rune(bytes: &[u8]) -> (char, usize) {
    let want = match bytes.first() {
        None => return (EOF, 0),
        Some(b) if *b < 0x80 => 1,
        Some(b) if *b >> 5 == 0b110 => 2,
        Some(b) if *b >> 4 == 0b1110 => 3,
        Some(b) if *b >> 3 == 0b11110 => 4,
        Some(_) => 0,
    };
    match bytes.get(..want).and_then(|b| std::str::from_utf8(b).ok()) {
        Some(s) if want > 0 => (s.chars().next().unwrap_or('\u{FFFD}'), want),
        _ => ('\u{FFFD}', 1),
    }
}

impl Scanner {
    fn new(text: &str) -> Self {
        Scanner {
            buf: text.as_bytes().to_vec(),
            pos: 0,
            start: 0,
            width: 0,
            mode: 0,
            accept: accept_rune,
            removed: Vec::new(),
        }
    }

    fn read(&mut self) -> char {
        if self.pos >= self.buf.len() {
            self.width = 0;
            return EOF;
        }
        let (r, w) = decode_rune(&self.buf[self.pos..]);
        self.width = w;
        self.pos += w;
        r
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(self.width);
    }

    /// Deletes the escape byte just read (drone removes it from the buffer; `pos` stays put).
    fn skip(&mut self) {
        self.buf.remove(self.pos - 1);
        self.removed.push(self.pos - 1);
    }

    fn peek(&mut self) -> char {
        let r = self.read();
        self.unread();
        r
    }

    fn string(&self) -> Vec<u8> {
        self.buf[self.start..self.pos].to_vec()
    }

    fn scan(&mut self) -> Token {
        self.start = self.pos;
        let r = self.read();
        if r == EOF {
            Token::Eof
        } else if self.scan_lbrack(r) {
            Token::Lbrack
        } else if self.scan_rbrack(r) {
            Token::Rbrack
        } else if self.scan_ident(r) {
            Token::Ident
        } else {
            Token::Illegal
        }
    }

    fn scan_ident(&mut self, r: char) -> bool {
        if self.mode & SCAN_IDENT == 0 {
            return false;
        }
        if self.scan_escaped(r) {
            self.skip();
        } else if !(self.accept)(r, self.pos - self.start) {
            return false;
        }
        loop {
            let r = self.read();
            if r == EOF {
                self.unread();
                break;
            }
            if self.scan_lbrack(r) {
                self.unread();
                self.unread();
                break;
            }
            if self.scan_escaped(r) {
                self.skip();
                continue;
            }
            if !(self.accept)(r, self.pos - self.start) {
                self.unread();
                break;
            }
        }
        true
    }

    fn scan_lbrack(&mut self, r: char) -> bool {
        if self.mode & SCAN_LBRACK == 0 {
            return false;
        }
        if r == '$' {
            if self.read() == '{' {
                return true;
            }
            self.unread();
        }
        false
    }

    fn scan_rbrack(&self, r: char) -> bool {
        self.mode & SCAN_RBRACK != 0 && r == '}'
    }

    fn scan_escaped(&mut self, r: char) -> bool {
        if self.mode & SCAN_ESCAPE == 0 {
            return false;
        }
        if r == '$' && self.peek() == '$' {
            return true;
        }
        if r != '\\' {
            return false;
        }
        matches!(self.peek(), '/' | '\\')
    }
}

fn accept_rune(_: char, _: usize) -> bool {
    true
}
/// Go's `unicode.IsLetter || unicode.IsDigit || '_'` (Rust's alphanumeric classes are a close superset).
fn accept_ident(r: char, _: usize) -> bool {
    r.is_alphabetic() || r.is_numeric() || r == '_'
}
fn accept_colon(r: char, _: usize) -> bool {
    r == ':'
}
fn accept_one_hash(r: char, i: usize) -> bool {
    r == '#' && i == 1
}
fn accept_not_closing(r: char, _: usize) -> bool {
    r != '}'
}
fn accept_hash_func(r: char, i: usize) -> bool {
    r == '#' && i < 3
}
fn accept_percent_func(r: char, i: usize) -> bool {
    r == '%' && i < 3
}
fn accept_default_func(r: char, i: usize) -> bool {
    (i == 1 && r == ':') || (i == 2 && matches!(r, '=' | '-' | '?' | '+'))
}
fn accept_replace_func(r: char, i: usize) -> bool {
    (i == 1 && r == '/') || (i == 2 && matches!(r, '/' | '#' | '%'))
}
fn accept_one_equal(r: char, i: usize) -> bool {
    i == 1 && r == '='
}
fn accept_one_colon(r: char, i: usize) -> bool {
    i == 1 && r == ':'
}
fn reject_colon_close(r: char, _: usize) -> bool {
    r != ':' && r != '}'
}
fn accept_slash(r: char, _: usize) -> bool {
    r == '/'
}
fn accept_not_slash(r: char, _: usize) -> bool {
    r != '/'
}
fn accept_casing_func(r: char, i: usize) -> bool {
    (r == ',' || r == '^') && i < 3
}

// ---- parser (parse/parse.go) ----

struct Parser {
    s: Scanner,
}

type ParseResult = Result<Node, ParseError>;

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl Parser {
    /// drone's `parseAny` recursion, as a loop: text and `${...}` until the end of the input.
    fn parse_any(&mut self) -> Result<Vec<Node>, ParseError> {
        let mut nodes = Vec::new();
        loop {
            self.s.accept = accept_rune;
            self.s.mode = SCAN_IDENT | SCAN_LBRACK | SCAN_ESCAPE;
            match self.s.scan() {
                Token::Ident => nodes.push(Node::Text(self.s.string())),
                Token::Eof => return Ok(nodes),
                Token::Lbrack => nodes.push(self.parse_func()?),
                _ => return Err(ParseError::new(BAD_SUBSTITUTION)),
            }
        }
    }

    /// Parses what follows a `${`; an error is tagged with this `${` unless a nested one already was.
    fn parse_func(&mut self) -> ParseResult {
        let open = self.s.start;
        self.parse_func_body().map_err(|mut err| {
            err.open.get_or_insert(open);
            err
        })
    }

    fn parse_func_body(&mut self) -> ParseResult {
        if self.s.peek() == '#' {
            return self.parse_len_func();
        }
        self.s.accept = accept_ident;
        self.s.mode = SCAN_IDENT;
        let name = match self.s.scan() {
            Token::Ident => lossy(self.s.string()),
            _ => return Err(ParseError::new(PARSE_VARIABLE_NAME)),
        };
        match self.s.peek() {
            ':' => return self.parse_default_or_substr(name),
            '=' => return self.parse_default_func(name),
            ',' | '^' => return self.parse_casing_func(name),
            '/' => return self.parse_replace_func(name),
            '#' => return self.parse_remove_func(name, accept_hash_func),
            '%' => return self.parse_remove_func(name, accept_percent_func),
            _ => {}
        }
        self.s.accept = accept_ident;
        self.s.mode = SCAN_RBRACK;
        match self.s.scan() {
            Token::Rbrack => Ok(Node::Func {
                param: name,
                name: String::new(),
                args: Vec::new(),
            }),
            _ => Err(ParseError::new(MISSING_CLOSING_BRACE)),
        }
    }

    fn parse_param(&mut self, accept: Accept, mode: u8) -> ParseResult {
        self.s.accept = accept;
        self.s.mode = mode | SCAN_LBRACK;
        match self.s.scan() {
            Token::Lbrack => self.parse_func(),
            Token::Ident | Token::Rbrack => Ok(Node::Text(self.s.string())),
            _ => Err(ParseError::new(PARSE_FUNC_SUBSTITUTION)),
        }
    }

    /// Scans the function operator (`:-`, `//`, `^^`, ...) with `accept`, or fails with `err`.
    fn scan_operator(&mut self, accept: Accept, err: &'static str) -> Result<String, ParseError> {
        self.s.accept = accept;
        self.s.mode = SCAN_IDENT;
        match self.s.scan() {
            Token::Ident => Ok(lossy(self.s.string())),
            _ => Err(ParseError::new(err)),
        }
    }

    fn parse_default_or_substr(&mut self, name: String) -> ParseResult {
        self.s.read();
        let r = self.s.peek();
        self.s.unread();
        match r {
            '=' | '-' | '?' | '+' => self.parse_default_func(name),
            _ => self.parse_substr_func(name),
        }
    }

    fn parse_substr_func(&mut self, param: String) -> ParseResult {
        let name = self.scan_operator(accept_one_colon, BAD_SUBSTITUTION)?;
        let mut args = vec![self.parse_param(reject_colon_close, SCAN_IDENT)?];
        self.s.accept = accept_colon;
        self.s.mode = SCAN_IDENT | SCAN_RBRACK;
        match self.s.scan() {
            Token::Rbrack => return Ok(Node::Func { param, name, args }),
            Token::Ident => {}
            _ => return Err(ParseError::new(BAD_SUBSTITUTION)),
        }
        args.push(self.parse_param(accept_not_closing, SCAN_IDENT)?);
        self.consume_rbrack()?;
        Ok(Node::Func { param, name, args })
    }

    fn parse_remove_func(&mut self, param: String, accept: Accept) -> ParseResult {
        let name = self.scan_operator(accept, BAD_SUBSTITUTION)?;
        let args = vec![self.parse_param(accept_not_closing, SCAN_IDENT)?];
        self.consume_rbrack()?;
        Ok(Node::Func { param, name, args })
    }

    fn parse_replace_func(&mut self, param: String) -> ParseResult {
        let name = self.scan_operator(accept_replace_func, BAD_SUBSTITUTION)?;
        let mut args = vec![self.parse_param(accept_not_slash, SCAN_IDENT | SCAN_ESCAPE)?];
        self.scan_operator(accept_slash, BAD_SUBSTITUTION)?;
        if self.s.peek() != '}' {
            args.push(self.parse_param(accept_not_closing, SCAN_IDENT | SCAN_ESCAPE)?);
        }
        self.consume_rbrack()?;
        Ok(Node::Func { param, name, args })
    }

    fn parse_default_func(&mut self, param: String) -> ParseResult {
        let accept = if self.s.peek() == '=' {
            accept_one_equal
        } else {
            accept_default_func
        };
        let name = self.scan_operator(accept, PARSE_DEFAULT_FUNCTION)?;
        let mut args = Vec::new();
        while self.s.peek() != '}' {
            args.push(self.parse_param(accept_not_closing, SCAN_IDENT)?);
        }
        self.consume_rbrack()?;
        Ok(Node::Func { param, name, args })
    }

    fn parse_casing_func(&mut self, param: String) -> ParseResult {
        let name = self.scan_operator(accept_casing_func, BAD_SUBSTITUTION)?;
        self.consume_rbrack()?;
        Ok(Node::Func {
            param,
            name,
            args: Vec::new(),
        })
    }

    fn parse_len_func(&mut self) -> ParseResult {
        let name = self.scan_operator(accept_one_hash, BAD_SUBSTITUTION)?;
        let param = self.scan_operator(accept_ident, BAD_SUBSTITUTION)?;
        self.consume_rbrack()?;
        Ok(Node::Func {
            param,
            name,
            args: Vec::new(),
        })
    }

    fn consume_rbrack(&mut self) -> Result<(), ParseError> {
        self.s.mode = SCAN_RBRACK;
        match self.s.scan() {
            Token::Rbrack => Ok(()),
            _ => Err(ParseError::new(BAD_SUBSTITUTION)),
        }
    }
}

#[cfg(test)]
mod tests;
