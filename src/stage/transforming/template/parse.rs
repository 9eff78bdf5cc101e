//! The parser of Go's `text/template` (`text/template/parse/parse.go`), for the language Promtail
//! templates use: text, actions with pipelines and variables, `if`/`else if`/`else`, `with`/`else
//! with`, `range` with `break`/`continue`. `define`, `template` and `block` are not supported (a
//! stage template is a single template).
//!
//! As in Go, functions and variables are resolved here: an unknown function or an undefined variable
//! is an error when the config loads.

use super::funcs::{lookup, FuncDef};
use super::lex::{lex, Keyword, Number, Tok, Token};

#[derive(Debug)]
pub enum Node {
    Text(Box<str>),
    /// `{{ pipeline }}`: printed unless it declares or assigns a variable.
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Break,
    Continue,
}

#[derive(Debug)]
pub struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub struct Pipe {
    /// Variables declared (`$x :=`) or assigned (`$x =`); two in `range $i, $v :=`.
    pub decl: Vec<Box<str>>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

/// One command of a pipeline: a function and its arguments, or a single operand.
#[derive(Debug)]
pub struct Cmd {
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub enum Arg {
    Dot,
    Nil,
    Bool(bool),
    Num(Number),
    Str(Box<str>),
    /// `.a.b`: fields of dot.
    Field(Vec<Box<str>>),
    /// `$x.a.b`.
    Var(Box<str>, Vec<Box<str>>),
    /// `(pipeline).a.b`.
    Sub(Box<Pipe>, Vec<Box<str>>),
    Func(&'static FuncDef),
}

/// How a list of nodes ended.
enum Stop {
    Eof,
    End,
    Else,
    ElseIf,
    ElseWith,
}

#[derive(Clone, Copy, PartialEq)]
enum Context {
    Action,
    If,
    With,
    Range,
    Paren,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Variables in scope, for Go's "undefined variable" check.
    vars: Vec<String>,
    range_depth: usize,
}

pub fn parse(src: &str) -> Result<Vec<Node>, String> {
    let mut p = Parser {
        tokens: lex(src)?,
        pos: 0,
        vars: vec!["$".into()],
        range_depth: 0,
    };
    let (list, end) = p.list()?;
    match end {
        Stop::Eof => Ok(list),
        Stop::End => Err(p.err("unexpected {{end}}")),
        _ => Err(p.err("unexpected {{else}}")),
    }
}

impl Parser {
    fn err(&self, msg: impl std::fmt::Display) -> String {
        let line = self
            .tokens
            .get(self.pos.min(self.tokens.len().saturating_sub(1)))
            .map_or(1, |t| t.line);
        format!("template: {line}: {msg}")
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.tokens.get(self.pos + n).map(|t| &t.tok)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).map(|t| t.tok.clone());
        self.pos += 1;
        t
    }

    fn expect_right(&mut self, what: &str) -> Result<(), String> {
        match self.next() {
            Some(Tok::Right) => Ok(()),
            other => Err(self.err(format!("unexpected {other:?} in {what}"))),
        }
    }

    /// Nodes up to the end of input or an `{{end}}` / `{{else}}` (consumed).
    fn list(&mut self) -> Result<(Vec<Node>, Stop), String> {
        let mut nodes = Vec::new();
        loop {
            match self.next() {
                None => return Ok((nodes, Stop::Eof)),
                Some(Tok::Text(t)) => nodes.push(Node::Text(t.into())),
                Some(Tok::Left) => {
                    if let Some(end) = self.action(&mut nodes)? {
                        return Ok((nodes, end));
                    }
                }
                Some(t) => return Err(self.err(format!("unexpected {t:?}"))),
            }
        }
    }

    /// After `{{`: one action, appended to `nodes`, or the end of the enclosing list.
    fn action(&mut self, nodes: &mut Vec<Node>) -> Result<Option<Stop>, String> {
        let kw = match self.peek() {
            Some(Tok::Kw(k)) => *k,
            _ => {
                let pipe = self.pipe(Context::Action)?;
                nodes.push(Node::Action(pipe));
                return Ok(None);
            }
        };
        self.pos += 1;
        match kw {
            Keyword::End => {
                self.expect_right("end")?;
                Ok(Some(Stop::End))
            }
            Keyword::Else => match self.peek() {
                Some(Tok::Kw(Keyword::If)) => {
                    self.pos += 1;
                    Ok(Some(Stop::ElseIf))
                }
                Some(Tok::Kw(Keyword::With)) => {
                    self.pos += 1;
                    Ok(Some(Stop::ElseWith))
                }
                _ => {
                    self.expect_right("else")?;
                    Ok(Some(Stop::Else))
                }
            },
            Keyword::If => {
                let b = self.control(Context::If)?;
                nodes.push(Node::If(b));
                Ok(None)
            }
            Keyword::With => {
                let b = self.control(Context::With)?;
                nodes.push(Node::With(b));
                Ok(None)
            }
            Keyword::Range => {
                self.range_depth += 1;
                let b = self.control(Context::Range);
                self.range_depth -= 1;
                nodes.push(Node::Range(b?));
                Ok(None)
            }
            Keyword::Break | Keyword::Continue => {
                if self.range_depth == 0 {
                    return Err(self.err(format!("{{{{{kw:?}}}}} outside {{{{range}}}}")));
                }
                self.expect_right("break/continue")?;
                nodes.push(if kw == Keyword::Break {
                    Node::Break
                } else {
                    Node::Continue
                });
                Ok(None)
            }
            Keyword::Define | Keyword::Template | Keyword::Block => Err(self.err(format!(
                "{{{{{}}}}} is not supported in a stage template",
                format!("{kw:?}").to_lowercase()
            ))),
        }
    }

    /// `if`, `with`, `range` after the keyword: pipeline, list, optional else, end.
    fn control(&mut self, ctx: Context) -> Result<Branch, String> {
        let mark = self.vars.len();
        let result = self.control_inner(ctx);
        self.vars.truncate(mark);
        result
    }

    fn control_inner(&mut self, ctx: Context) -> Result<Branch, String> {
        let pipe = self.pipe(ctx)?;
        let (list, end) = self.list()?;
        let else_list = match end {
            Stop::End => None,
            Stop::Eof => return Err(self.err("unexpected EOF")),
            Stop::Else => {
                let (else_list, end) = self.list()?;
                if !matches!(end, Stop::End) {
                    return Err(self.err("expected end; found else or EOF"));
                }
                Some(else_list)
            }
            // `{{else if x}}` is `{{else}}{{if x}}...{{end}}{{end}}` sharing one end.
            Stop::ElseIf if ctx == Context::If => Some(vec![Node::If(self.control(Context::If)?)]),
            Stop::ElseWith if ctx == Context::With => {
                Some(vec![Node::With(self.control(Context::With)?)])
            }
            Stop::ElseIf | Stop::ElseWith => return Err(self.err("unexpected else if/with")),
        };
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    /// A pipeline, up to `}}` (or `)` in parentheses, left unconsumed there).
    fn pipe(&mut self, ctx: Context) -> Result<Pipe, String> {
        let mut decl = Vec::new();
        let mut assign = false;
        if let Some(Tok::Var(v)) = self.peek() {
            let v = v.clone();
            match (self.peek_at(1), self.peek_at(2), self.peek_at(3)) {
                (Some(Tok::Declare | Tok::Assign), _, _) => {
                    assign = self.peek_at(1) == Some(&Tok::Assign);
                    self.pos += 2;
                    decl.push(v);
                }
                (Some(Tok::Comma), Some(Tok::Var(v2)), Some(Tok::Declare | Tok::Assign))
                    if ctx == Context::Range =>
                {
                    let v2 = v2.clone();
                    assign = self.peek_at(3) == Some(&Tok::Assign);
                    self.pos += 4;
                    decl.push(v);
                    decl.push(v2);
                }
                _ => {}
            }
        }
        for v in &decl {
            if assign {
                if !self.vars.contains(v) {
                    return Err(self.err(format!("undefined variable: {v}")));
                }
            } else {
                self.vars.push(v.clone());
            }
        }
        let mut cmds = Vec::new();
        loop {
            cmds.push(self.command()?);
            match self.peek() {
                Some(Tok::Pipe) => self.pos += 1,
                Some(Tok::RParen) if ctx == Context::Paren => break,
                Some(Tok::Right) if ctx != Context::Paren => {
                    self.pos += 1;
                    break;
                }
                other => return Err(self.err(format!("unexpected {other:?} in operand"))),
            }
        }
        // Go: a literal can only start a pipeline.
        for cmd in &cmds[1..] {
            if matches!(
                cmd.args[0],
                Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Num(_) | Arg::Str(_)
            ) {
                return Err(self.err("non executable command in pipeline stage"));
            }
        }
        Ok(Pipe {
            decl: decl.into_iter().map(Into::into).collect(),
            assign,
            cmds,
        })
    }

    fn command(&mut self) -> Result<Cmd, String> {
        let mut args = Vec::new();
        while let Some(arg) = self.operand()? {
            args.push(arg);
        }
        if args.is_empty() {
            return Err(self.err("missing value for command"));
        }
        Ok(Cmd { args })
    }

    /// A term and the fields chained to it; None at the end of a command.
    fn operand(&mut self) -> Result<Option<Arg>, String> {
        let Some(tok) = self.peek().cloned() else {
            return Err(self.err("unclosed action"));
        };
        let term = match tok {
            Tok::Pipe | Tok::Right | Tok::RParen => return Ok(None),
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Num(n) => Arg::Num(n),
            Tok::Str(s) => Arg::Str(s.into()),
            Tok::Field(f) => Arg::Field(vec![f.into()]),
            Tok::Var(v) => {
                if !self.vars.contains(&v) {
                    return Err(self.err(format!("undefined variable {v:?}")));
                }
                Arg::Var(v.into(), Vec::new())
            }
            Tok::Ident(name) => match lookup(&name) {
                Some(def) => Arg::Func(def),
                None => return Err(self.err(format!("function {name:?} not defined"))),
            },
            Tok::LParen => {
                self.pos += 1;
                let pipe = self.pipe(Context::Paren)?;
                // `pipe` stopped at the `)`.
                Arg::Sub(Box::new(pipe), Vec::new())
            }
            other => return Err(self.err(format!("unexpected {other:?} in operand"))),
        };
        self.pos += 1;
        // Fields written right after the term, without space, chain onto it.
        let mut chain = Vec::new();
        while let Some(Token {
            tok: Tok::Field(f),
            spaced: false,
            ..
        }) = self.tokens.get(self.pos)
        {
            chain.push(Box::<str>::from(f.as_str()));
            self.pos += 1;
        }
        if chain.is_empty() {
            return Ok(Some(term));
        }
        Ok(Some(match term {
            Arg::Field(mut f) => {
                f.extend(chain);
                Arg::Field(f)
            }
            Arg::Var(v, _) => Arg::Var(v, chain),
            Arg::Sub(p, _) => Arg::Sub(p, chain),
            Arg::Func(def) => {
                return Err(self.err(format!("unexpected . after term {:?}", def.name)))
            }
            _ => return Err(self.err("unexpected . after term")),
        }))
    }
}
