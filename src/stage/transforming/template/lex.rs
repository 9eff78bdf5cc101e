//! The lexer of Go's `text/template` (`text/template/parse/lex.go`): text between actions, and the
//! tokens inside `{{ }}`.
//!
//! Trim markers are applied here: `{{- ` removes the white space before the action, ` -}}` the white
//! space after it (the marker needs a space next to the dash: `{{-3}}` is the number -3). Comments
//! `{{/* */}}` produce no token.

/// Keywords of the action language.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Keyword {
    If,
    Else,
    End,
    Range,
    With,
    Break,
    Continue,
    Define,
    Template,
    Block,
}

/// A number literal, read as Go's `parse.NumberNode` reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Text(String),
    Left,
    Right,
    /// `.name` (the name without the dot).
    Field(String),
    /// `$` or `$name` (with the dollar).
    Var(String),
    Ident(String),
    Str(String),
    Num(Number),
    Bool(bool),
    Nil,
    Dot,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Kw(Keyword),
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
    /// White space separates this token from the previous one (field chains need adjacency).
    pub spaced: bool,
}

const SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    line: usize,
    tokens: Vec<Token>,
    spaced: bool,
}

/// Split a template into tokens.
pub fn lex(src: &str) -> Result<Vec<Token>, String> {
    let mut lx = Lexer {
        src,
        pos: 0,
        line: 1,
        tokens: Vec::new(),
        spaced: false,
    };
    lx.run()?;
    Ok(lx.tokens)
}

impl<'s> Lexer<'s> {
    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn err(&self, msg: impl std::fmt::Display) -> String {
        format!("template: {}: {msg}", self.line)
    }

    fn push(&mut self, tok: Tok) {
        self.tokens.push(Token {
            tok,
            line: self.line,
            spaced: self.spaced,
        });
        self.spaced = false;
    }

    fn advance(&mut self, n: usize) {
        self.line += self.src[self.pos..self.pos + n].matches('\n').count();
        self.pos += n;
    }

    fn run(&mut self) -> Result<(), String> {
        let mut trim_next_text = false;
        loop {
            let rest = self.rest();
            let (text, found) = match rest.find("{{") {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            let left_trim = found && {
                let after = &rest.as_bytes()[text.len() + 2..];
                after.len() >= 2 && after[0] == b'-' && is_space(after[1])
            };
            let mut t = text;
            if trim_next_text {
                t = t.trim_start_matches(SPACE);
            }
            if left_trim {
                t = t.trim_end_matches(SPACE);
            }
            if !t.is_empty() {
                self.push(Tok::Text(t.to_string()));
            }
            self.advance(text.len());
            if !found {
                return Ok(());
            }
            self.advance(if left_trim { 4 } else { 2 });
            trim_next_text = self.action()?;
        }
    }

    /// After `{{`: lex the action up to `}}`; returns whether it ended with a trim marker.
    fn action(&mut self) -> Result<bool, String> {
        if self.rest().starts_with("/*") {
            let end = self
                .rest()
                .find("*/")
                .ok_or_else(|| self.err("unclosed comment"))?;
            self.advance(end + 2);
            return match self.at_right_delim() {
                Some(trim) => {
                    self.advance(if trim { 4 } else { 2 });
                    Ok(trim)
                }
                None => Err(self.err("comment ends before closing delimiter")),
            };
        }
        self.spaced = false;
        self.push(Tok::Left);
        let mut depth = 0i32;
        loop {
            if let Some(trim) = self.at_right_delim() {
                if depth > 0 {
                    return Err(self.err("unclosed left paren"));
                }
                self.advance(if trim { 4 } else { 2 });
                self.push(Tok::Right);
                return Ok(trim);
            }
            let Some(c) = self.rest().chars().next() else {
                return Err(self.err("unclosed action"));
            };
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    self.advance(1);
                    self.spaced = true;
                }
                '=' => self.single(Tok::Assign),
                ':' => {
                    if !self.rest().starts_with(":=") {
                        return Err(self.err("expected :="));
                    }
                    self.advance(2);
                    self.push(Tok::Declare);
                }
                '|' => self.single(Tok::Pipe),
                ',' => self.single(Tok::Comma),
                '(' => {
                    depth += 1;
                    self.single(Tok::LParen);
                }
                ')' => {
                    depth -= 1;
                    if depth < 0 {
                        return Err(self.err("unexpected right paren"));
                    }
                    self.single(Tok::RParen);
                }
                '"' => self.quoted()?,
                '`' => self.raw()?,
                '\'' => self.char_constant()?,
                '$' => {
                    let n = 1 + self.word_len(1);
                    let name = self.rest()[..n].to_string();
                    self.advance(n);
                    self.check_terminator()?;
                    self.push(Tok::Var(name));
                }
                '.' => {
                    let next = self.rest()[1..].chars().next();
                    if next.is_some_and(|c| c.is_ascii_digit()) {
                        self.number()?;
                    } else if next.is_some_and(is_alnum) {
                        let n = self.word_len(1);
                        let name = self.rest()[1..1 + n].to_string();
                        self.advance(1 + n);
                        self.check_terminator()?;
                        self.push(Tok::Field(name));
                    } else {
                        self.single(Tok::Dot);
                    }
                }
                '+' | '-' | '0'..='9' => self.number()?,
                c if is_alnum(c) => self.identifier()?,
                c => return Err(self.err(format!("unrecognized character in action: {c:?}"))),
            }
        }
    }

    /// At `}}` or ` -}}`: Some(trim).
    fn at_right_delim(&self) -> Option<bool> {
        let b = self.rest().as_bytes();
        if b.len() >= 4 && is_space(b[0]) && b[1] == b'-' && &b[2..4] == b"}}" {
            return Some(true);
        }
        b.starts_with(b"}}").then_some(false)
    }

    fn single(&mut self, tok: Tok) {
        self.advance(1);
        self.push(tok);
    }

    /// Length of the alphanumeric run starting `skip` bytes in.
    fn word_len(&self, skip: usize) -> usize {
        self.rest()[skip..]
            .char_indices()
            .find(|&(_, c)| !is_alnum(c))
            .map_or(self.rest().len() - skip, |(i, _)| i)
    }

    /// Go requires a field, variable or word to be followed by a space or punctuation.
    fn check_terminator(&self) -> Result<(), String> {
        match self.rest().chars().next() {
            None => Ok(()),
            Some(c) if SPACE.contains(&c) || ".,|:()=".contains(c) => Ok(()),
            Some('}') if self.rest().starts_with("}}") => Ok(()),
            Some(c) => Err(self.err(format!("bad character {c:?}"))),
        }
    }

    fn identifier(&mut self) -> Result<(), String> {
        let n = self.word_len(0);
        let word = &self.rest()[..n];
        let tok = match word {
            "true" => Tok::Bool(true),
            "false" => Tok::Bool(false),
            "nil" => Tok::Nil,
            "if" => Tok::Kw(Keyword::If),
            "else" => Tok::Kw(Keyword::Else),
            "end" => Tok::Kw(Keyword::End),
            "range" => Tok::Kw(Keyword::Range),
            "with" => Tok::Kw(Keyword::With),
            "break" => Tok::Kw(Keyword::Break),
            "continue" => Tok::Kw(Keyword::Continue),
            "define" => Tok::Kw(Keyword::Define),
            "template" => Tok::Kw(Keyword::Template),
            "block" => Tok::Kw(Keyword::Block),
            w => Tok::Ident(w.to_string()),
        };
        self.advance(n);
        self.check_terminator()?;
        self.push(tok);
        Ok(())
    }

    fn quoted(&mut self) -> Result<(), String> {
        let rest = self.rest();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest.char_indices().skip(1) {
            match c {
                '\n' => break,
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let end = end.ok_or_else(|| self.err("unterminated quoted string"))?;
        let s = unquote(&rest[1..end]).map_err(|e| self.err(e))?;
        self.advance(end + 1);
        self.push(Tok::Str(s));
        Ok(())
    }

    fn raw(&mut self) -> Result<(), String> {
        let end = self.rest()[1..]
            .find('`')
            .ok_or_else(|| self.err("unterminated raw quoted string"))?;
        let s = self.rest()[1..1 + end].replace('\r', "");
        self.advance(end + 2);
        self.push(Tok::Str(s));
        Ok(())
    }

    fn char_constant(&mut self) -> Result<(), String> {
        let rest = self.rest();
        let end = rest[1..]
            .char_indices()
            .scan(false, |escaped, (i, c)| {
                let stop = c == '\'' && !*escaped;
                *escaped = c == '\\' && !*escaped;
                Some((i, stop))
            })
            .find(|&(_, stop)| stop)
            .map(|(i, _)| i + 1)
            .ok_or_else(|| self.err("unterminated character constant"))?;
        let s = unquote(&rest[1..end]).map_err(|e| self.err(e))?;
        let mut chars = s.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return Err(self.err(format!("malformed character constant: {}", &rest[..=end])));
        };
        self.advance(end + 1);
        self.push(Tok::Num(Number {
            text: rest[..=end].to_string(),
            int: Some(c as i64),
            float: Some(c as u32 as f64),
        }));
        Ok(())
    }

    fn number(&mut self) -> Result<(), String> {
        let rest = self.rest();
        let b = rest.as_bytes();
        let mut n = 0;
        if matches!(b.first(), Some(b'+' | b'-')) {
            n = 1;
        }
        // Digits, letters (hex digits, base prefixes, exponents), '_', '.', and a sign after an
        // exponent; Go rejects malformed ones when it converts them, as below.
        while n < b.len() {
            let c = b[n];
            let sign_after_exp = matches!(c, b'+' | b'-')
                && matches!(b[n - 1], b'e' | b'E' | b'p' | b'P')
                && !rest[..n].starts_with("0x");
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || sign_after_exp {
                n += 1;
            } else {
                break;
            }
        }
        let text = &rest[..n];
        let number =
            parse_number(text).ok_or_else(|| self.err(format!("bad number syntax: {text:?}")))?;
        self.advance(n);
        self.push(Tok::Num(number));
        Ok(())
    }
}

/// Go's integer syntax with base prefixes (`0x`, `0o`, `0b`, leading `0`) and `_` separators.
pub use crate::stage::weak::parse_go_int;

/// A number literal as Go's parser reads it: an integer, and/or a float.
pub fn parse_number(text: &str) -> Option<Number> {
    let int = parse_go_int(text);
    let float = match int {
        Some(i) => Some(i as f64),
        None => {
            let clean = text.replace('_', "");
            let f: f64 = clean.parse().ok().filter(|f: &f64| f.is_finite())?;
            // Without a decimal point or exponent it is an integer too big for int64.
            if !text.contains(['.', 'e', 'E']) {
                return None;
            }
            Some(f)
        }
    };
    let int = int.or_else(|| {
        let f = float?;
        (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
    });
    Some(Number {
        text: text.to_string(),
        int,
        float,
    })
}

/// Go's `strconv.Unquote` for the body of a double-quoted string or a character constant.
pub fn unquote(body: &str) -> Result<String, String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or("invalid syntax")?;
        let hex = |chars: &mut std::str::Chars, n: usize| -> Result<u32, String> {
            let s: String = chars.take(n).collect();
            if s.len() != n {
                return Err("invalid syntax".into());
            }
            u32::from_str_radix(&s, 16).map_err(|_| "invalid syntax".to_string())
        };
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' | '"' | '\'' => out.push(e),
            'x' => out.push(char::from_u32(hex(&mut chars, 2)?).ok_or("invalid syntax")?),
            'u' => out.push(char::from_u32(hex(&mut chars, 4)?).ok_or("invalid syntax")?),
            'U' => out.push(char::from_u32(hex(&mut chars, 8)?).ok_or("invalid syntax")?),
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let v = u32::from_str_radix(&format!("{e}{rest}"), 8)
                    .map_err(|_| "invalid syntax".to_string())?;
                out.push(char::from_u32(v).ok_or("invalid syntax")?);
            }
            _ => return Err(format!("invalid syntax: unknown escape \\{e}")),
        }
    }
    Ok(out)
}
