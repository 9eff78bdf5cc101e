//! Running a parsed template (Go `text/template/exec.go`) on a stage's data.
//!
//! The data is never copied into a map: `.name` looks the key up in `extracted` (converted with
//! Promtail's `getString`, nil and complex values hidden), `.Value` and `.Entry` are supplied by the
//! stage. The output is written to a buffer the caller reuses.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use regex::Regex;

use super::funcs::{FuncDef, Kind};
use super::lex::Number;
use super::parse::{parse, Arg, Branch, Cmd, Node, Pipe};
use super::value::V;
use crate::stage::value::value_to_string;
use crate::stage::Extracted;

/// A parsed template, shareable between threads.
#[derive(Debug)]
pub struct Template {
    root: Vec<Node>,
}

/// What a template sees as `.`: the extracted values as strings, plus `.Value` and `.Entry` when the
/// stage supplies them (they hide extracted keys of the same name).
pub struct Data<'a> {
    pub extracted: &'a Extracted,
    pub value: Option<Cow<'a, str>>,
    pub entry: Option<&'a str>,
}

impl<'a> Data<'a> {
    fn field(&self, name: &str) -> V<'_> {
        match (name, &self.value, self.entry) {
            ("Value", Some(v), _) => V::str(v.as_ref()),
            ("Entry", _, Some(e)) => V::str(e),
            _ => match self.extracted.get(name).and_then(value_to_string) {
                Some(s) => V::Str(s),
                None => V::Nil,
            },
        }
    }

    /// The data as a map, for the rare template that ranges over `.` or passes it to a function.
    fn to_map(&self) -> V<'_> {
        let mut map: BTreeMap<String, V> = self
            .extracted
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), V::Str(value_to_string(v)?))))
            .collect();
        if let Some(v) = &self.value {
            map.insert("Value".into(), V::str(v.as_ref()));
        }
        if let Some(e) = self.entry {
            map.insert("Entry".into(), V::str(e));
        }
        V::Map(Rc::new(map))
    }
}

/// State kept between renders by one stage instance: compiled regexes of `regexReplaceAll` and
/// friends, whose patterns are usually constants.
#[derive(Default)]
pub struct Env {
    regexes: HashMap<String, Result<Regex, String>>,
}

const REGEX_CACHE_MAX: usize = 64;

impl Env {
    /// A Go (RE2) regex, compiled once.
    pub fn regex(&mut self, pattern: &str) -> Result<&Regex, String> {
        if !self.regexes.contains_key(pattern) {
            if self.regexes.len() >= REGEX_CACHE_MAX {
                self.regexes.clear();
            }
            let compiled = crate::goregex::compile(pattern).map_err(|e| format!("regexp: {e}"));
            self.regexes.insert(pattern.to_string(), compiled);
        }
        match &self.regexes[pattern] {
            Ok(re) => Ok(re),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Where the current dot is: the data itself, or a value.
#[derive(Clone)]
enum Dot<'a> {
    Root,
    Val(V<'a>),
}

/// The largest integer `range` iterates over.
const RANGE_MAX: i64 = 1_000_000;

#[derive(PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

type Res<T> = Result<T, String>;

impl Template {
    pub fn parse(src: &str) -> Result<Template, String> {
        Ok(Template { root: parse(src)? })
    }

    /// Append the template's output for `data` to `out`. On error `out` holds partial output.
    pub fn render(&self, data: &Data, env: &mut Env, out: &mut String) -> Result<(), String> {
        let mut state = State {
            data,
            env,
            out,
            vars: Vec::new(),
        };
        state.walk(&Dot::Root, &self.root).map(|_| ())
    }
}

struct State<'a, 'e> {
    data: &'a Data<'a>,
    env: &'e mut Env,
    out: &'e mut String,
    vars: Vec<(&'a str, Dot<'a>)>,
}

impl<'a> State<'a, '_> {
    fn walk(&mut self, dot: &Dot<'a>, nodes: &'a [Node]) -> Res<Flow> {
        for node in nodes {
            let flow = match node {
                Node::Text(t) => {
                    self.out.push_str(t);
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    let v = self.pipe(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.print(&v);
                    }
                    Flow::Normal
                }
                Node::If(b) => self.if_with(dot, b, false)?,
                Node::With(b) => self.if_with(dot, b, true)?,
                Node::Range(b) => self.range(dot, b)?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    /// Print a pipeline's value as Go does: nil (or a missing key) is `<no value>`.
    fn print(&mut self, v: &Dot<'a>) {
        match v {
            Dot::Val(V::Nil) => self.out.push_str("<no value>"),
            Dot::Val(V::Str(s)) => self.out.push_str(s),
            Dot::Val(v) => v.write_go(self.out),
            Dot::Root => self.data.to_map().write_go(self.out),
        }
    }

    fn truth(&self, v: &Dot<'a>) -> bool {
        match v {
            Dot::Root => true,
            Dot::Val(v) => v.truth(),
        }
    }

    fn if_with(&mut self, dot: &Dot<'a>, b: &'a Branch, with: bool) -> Res<Flow> {
        let mark = self.vars.len();
        let result = (|| {
            let v = self.pipe(dot, &b.pipe)?;
            if self.truth(&v) {
                self.walk(if with { &v } else { dot }, &b.list)
            } else if let Some(list) = &b.else_list {
                self.walk(dot, list)
            } else {
                Ok(Flow::Normal)
            }
        })();
        self.vars.truncate(mark);
        result
    }

    fn range(&mut self, dot: &Dot<'a>, b: &'a Branch) -> Res<Flow> {
        let mark = self.vars.len();
        let result = self.range_inner(dot, b);
        self.vars.truncate(mark);
        result
    }

    fn range_inner(&mut self, dot: &Dot<'a>, b: &'a Branch) -> Res<Flow> {
        let v = self.pipe(dot, &b.pipe)?;
        let items: Vec<(V<'a>, V<'a>)> = match self.concrete(v) {
            V::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, v)| (V::Int(i as i64), v.clone()))
                .collect(),
            V::Map(m) => m
                .iter()
                .map(|(k, v)| (V::Str(Cow::Owned(k.clone())), v.clone()))
                .collect(),
            V::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    return Err("can't use two variables when ranging over an integer".into());
                }
                // A bound Go does not have: a count read from a log line must not exhaust memory.
                if n > RANGE_MAX {
                    return Err(format!("range over {n}: more than {RANGE_MAX} iterations"));
                }
                (0..n.max(0)).map(|i| (V::Int(i), V::Int(i))).collect()
            }
            V::Nil => Vec::new(),
            other => return Err(format!("range can't iterate over {}", other.type_name())),
        };
        if items.is_empty() {
            return match &b.else_list {
                Some(list) => self.walk(dot, list),
                None => Ok(Flow::Normal),
            };
        }
        let scope = self.vars.len();
        // The range's own variables are the last ones the pipeline declared.
        let first_var = scope - b.pipe.decl.len();
        for (key, elem) in items {
            match b.pipe.decl.len() {
                1 => self.vars[first_var].1 = Dot::Val(elem.clone()),
                2 => {
                    self.vars[first_var].1 = Dot::Val(key);
                    self.vars[first_var + 1].1 = Dot::Val(elem.clone());
                }
                _ => {}
            }
            let flow = self.walk(&Dot::Val(elem), &b.list);
            self.vars.truncate(scope);
            if flow? == Flow::Break {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    /// Evaluate a pipeline and declare or assign its variables.
    fn pipe(&mut self, dot: &Dot<'a>, pipe: &'a Pipe) -> Res<Dot<'a>> {
        let mut value: Option<Dot<'a>> = None;
        for cmd in &pipe.cmds {
            value = Some(self.cmd(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Dot::Val(V::Nil));
        for name in &pipe.decl {
            if pipe.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| *n == &**name) {
                    slot.1 = value.clone();
                }
            } else {
                self.vars.push((name, value.clone()));
            }
        }
        Ok(value)
    }

    fn cmd(&mut self, dot: &Dot<'a>, cmd: &'a Cmd, last: Option<Dot<'a>>) -> Res<Dot<'a>> {
        let first = &cmd.args[0];
        if let Arg::Func(def) = first {
            let last = last.map(|d| self.concrete(d));
            return self.call(dot, def, &cmd.args[1..], last).map(Dot::Val);
        }
        if cmd.args.len() > 1 || last.is_some() {
            return Err("can't give argument to non-function".into());
        }
        if let Arg::Nil = first {
            return Err("nil is not a command".into());
        }
        self.operand(dot, first)
    }

    fn call(
        &mut self,
        dot: &Dot<'a>,
        def: &'static FuncDef,
        args: &'a [Arg],
        last: Option<V<'a>>,
    ) -> Res<V<'a>> {
        match def.kind {
            Kind::And | Kind::Or => {
                if args.is_empty() && last.is_none() {
                    return Err(format!(
                        "wrong number of args for {}: want at least 1 got 0",
                        def.name
                    ));
                }
                let and = matches!(def.kind, Kind::And);
                let mut v = V::Nil;
                for arg in args {
                    v = self.arg(dot, arg)?;
                    if v.truth() != and {
                        return Ok(v);
                    }
                }
                Ok(last.unwrap_or(v))
            }
            Kind::Plain(f) => {
                let mut vals = Vec::with_capacity(args.len() + 1);
                for arg in args {
                    vals.push(self.arg(dot, arg)?);
                }
                vals.extend(last);
                f(self.env, vals).map_err(|e| format!("error calling {}: {e}", def.name))
            }
        }
    }

    /// An argument's value (the data as a map if it is `.` at the top).
    fn arg(&mut self, dot: &Dot<'a>, arg: &'a Arg) -> Res<V<'a>> {
        let d = self.operand(dot, arg)?;
        Ok(self.concrete(d))
    }

    fn concrete(&self, d: Dot<'a>) -> V<'a> {
        match d {
            Dot::Root => self.data.to_map(),
            Dot::Val(v) => v,
        }
    }

    fn operand(&mut self, dot: &Dot<'a>, arg: &'a Arg) -> Res<Dot<'a>> {
        Ok(match arg {
            Arg::Dot => dot.clone(),
            Arg::Nil => Dot::Val(V::Nil),
            Arg::Bool(b) => Dot::Val(V::Bool(*b)),
            Arg::Num(n) => Dot::Val(number(n)),
            Arg::Str(s) => Dot::Val(V::str(&**s)),
            Arg::Field(names) => self.fields(dot.clone(), names)?,
            Arg::Var(name, names) => {
                // `$` is the data; the parser has checked that other variables exist.
                let v = match &**name {
                    "$" => Dot::Root,
                    _ => self
                        .vars
                        .iter()
                        .rev()
                        .find(|(n, _)| *n == &**name)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| format!("undefined variable: {name}"))?,
                };
                self.fields(v, names)?
            }
            Arg::Sub(pipe, names) => {
                let v = self.pipe(dot, pipe)?;
                self.fields(v, names)?
            }
            Arg::Func(def) => Dot::Val(self.call(dot, def, &[], None)?),
        })
    }

    fn fields(&self, mut v: Dot<'a>, names: &'a [Box<str>]) -> Res<Dot<'a>> {
        for name in names {
            v = Dot::Val(match v {
                Dot::Root => self.data.field(name),
                Dot::Val(V::Map(m)) => m.get(&**name).cloned().unwrap_or(V::Nil),
                Dot::Val(V::Nil) => V::Nil,
                Dot::Val(other) => {
                    return Err(format!(
                        "can't evaluate field {name} in type {}",
                        other.type_name()
                    ))
                }
            });
        }
        Ok(v)
    }
}

/// A number literal's value: Go's `idealConstant` (float if written with a point or exponent).
fn number(n: &Number) -> V<'static> {
    let t = &n.text;
    let hex = t
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase()
        .starts_with("0x");
    let float_text = !hex && !t.starts_with('\'') && t.contains(['.', 'e', 'E', 'p', 'P']);
    match (n.int, n.float) {
        (Some(i), _) if !float_text => V::Int(i),
        (_, Some(f)) => V::Float(f),
        (Some(i), None) => V::Int(i),
        (None, None) => V::Nil,
    }
}
