//! The functions a stage template can call: Promtail's own (`ToLower`, `Hash`, `regexReplaceAll`...,
//! `stages/template.go`), which take precedence, then the sprig subset in [`super::sprig`], then Go's
//! builtins (`and`, `eq`, `len`, `index`, `printf`...).
//!
//! Arguments arrive untyped; a function that wants a string or an int checks, as Go's reflection
//! does: a missing value given for a string is an error ("invalid value; expected string"), which
//! leaves the entry unchanged.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::OnceLock;

use sha2::Digest as _;

use super::exec::Env;
use super::printf::sprintf;
use super::value::V;
use crate::stage::transforming::timestamp::layout::Layout;

pub type Res<T> = Result<T, String>;
pub type Func = for<'a> fn(&mut Env, Vec<V<'a>>) -> Res<V<'a>>;

pub enum Kind {
    /// `and` and `or` evaluate their arguments lazily.
    And,
    Or,
    Plain(Func),
}

pub struct FuncDef {
    pub name: &'static str,
    pub kind: Kind,
}

impl std::fmt::Debug for FuncDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

const fn plain(name: &'static str, f: Func) -> FuncDef {
    FuncDef {
        name,
        kind: Kind::Plain(f),
    }
}

/// Promtail's functions (`extraFunctionMap`).
static PROMTAIL: &[FuncDef] = &[
    plain("ToLower", |_, a| Ok(V::str(one_str(a)?.to_lowercase()))),
    plain("ToUpper", |_, a| Ok(V::str(one_str(a)?.to_uppercase()))),
    plain("Replace", replace_n),
    plain("Trim", |_, a| {
        trim_with(a, |s, cut| s.trim_matches(|c| cut.contains(c)))
    }),
    plain("TrimLeft", |_, a| {
        trim_with(a, |s, cut| s.trim_start_matches(|c| cut.contains(c)))
    }),
    plain("TrimRight", |_, a| {
        trim_with(a, |s, cut| s.trim_end_matches(|c| cut.contains(c)))
    }),
    plain("TrimPrefix", |_, a| {
        trim_with(a, |s, p| s.strip_prefix(p).unwrap_or(s))
    }),
    plain("TrimSuffix", |_, a| {
        trim_with(a, |s, p| s.strip_suffix(p).unwrap_or(s))
    }),
    plain("TrimSpace", |_, a| {
        let s = one_str(a)?;
        Ok(V::str(match s {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
            Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
        }))
    }),
    plain("Hash", |_, a| {
        let [x, y] = strs(a)?;
        Ok(V::str(hex(&sha3::Sha3_256::digest(format!("{x}{y}")))))
    }),
    plain("Sha2Hash", |_, a| {
        let [x, y] = strs(a)?;
        Ok(V::str(hex(&sha2::Sha256::digest(format!("{x}{y}")))))
    }),
    plain("regexReplaceAll", |env, a| {
        let [re, s, repl] = strs(a)?;
        Ok(V::str(env.regex(&re)?.replace_all(&s, &*repl).into_owned()))
    }),
    plain("regexReplaceAllLiteral", |env, a| {
        let [re, s, repl] = strs(a)?;
        let out = env.regex(&re)?.replace_all(&s, regex::NoExpand(&repl));
        Ok(V::str(out.into_owned()))
    }),
];

/// Go's builtin functions (`text/template/funcs.go`).
static BUILTINS: &[FuncDef] = &[
    FuncDef {
        name: "and",
        kind: Kind::And,
    },
    FuncDef {
        name: "or",
        kind: Kind::Or,
    },
    plain("not", |_, a| {
        let [v] = take(a)?;
        Ok(V::Bool(!v.truth()))
    }),
    plain("eq", |_, a| eq(&a).map(V::Bool)),
    plain("ne", |_, a| {
        let [x, y] = take(a)?;
        eq(&[x, y]).map(|b| V::Bool(!b))
    }),
    plain("lt", |_, a| cmp2(a, |o| o == Ordering::Less)),
    plain("le", |_, a| cmp2(a, |o| o != Ordering::Greater)),
    plain("gt", |_, a| cmp2(a, |o| o == Ordering::Greater)),
    plain("ge", |_, a| cmp2(a, |o| o != Ordering::Less)),
    plain("len", |_, a| {
        let [v] = take(a)?;
        Ok(V::Int(match &v {
            V::Str(s) => s.len(),
            V::List(l) => l.len(),
            V::Map(m) => m.len(),
            V::Nil => return Err("len of nil pointer".into()),
            other => return Err(format!("len of type {}", other.type_name())),
        } as i64))
    }),
    plain("index", index),
    plain("slice", slice),
    plain("print", |_, a| Ok(V::str(sprint(&a, false)))),
    plain("println", |_, a| Ok(V::str(sprint(&a, true)))),
    plain("printf", |_, mut a| {
        if a.is_empty() {
            return Err("wrong number of args for printf: want at least 1 got 0".into());
        }
        let format = want_str(a.remove(0))?;
        Ok(V::str(sprintf(&format, &a)))
    }),
    plain("html", |_, a| Ok(V::str(html_escape(&joined(&a))))),
    plain("urlquery", |_, a| Ok(V::str(query_escape(&joined(&a))))),
];

/// The function called `name`: Promtail's, then sprig's, then Go's builtins.
pub fn lookup(name: &str) -> Option<&'static FuncDef> {
    [PROMTAIL, super::sprig::SPRIG, BUILTINS]
        .into_iter()
        .flat_map(|table| table.iter())
        .find(|f| f.name == name)
}

/// Exactly `N` arguments.
pub fn take<'a, const N: usize>(args: Vec<V<'a>>) -> Res<[V<'a>; N]> {
    args.try_into()
        .map_err(|a: Vec<V>| format!("wrong number of args: want {N} got {}", a.len()))
}

/// A string parameter, as Go's reflection checks it.
pub fn want_str(v: V<'_>) -> Res<Cow<'_, str>> {
    match v {
        V::Str(s) => Ok(s),
        V::Nil => Err("invalid value; expected string".into()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

/// An int parameter (an integral float constant is accepted, as Go accepts `3.0`).
pub fn want_int(v: &V) -> Res<i64> {
    match v {
        V::Int(i) => Ok(*i),
        V::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
        V::Nil => Err("invalid value; expected int".into()),
        other => Err(format!(
            "wrong type for value; expected int; got {}",
            other.type_name()
        )),
    }
}

/// Exactly `N` string arguments.
pub fn strs<'a, const N: usize>(args: Vec<V<'a>>) -> Res<[Cow<'a, str>; N]> {
    let vals: [V<'a>; N] = take(args)?;
    let mut out: [Cow<'a, str>; N] = std::array::from_fn(|_| Cow::Borrowed(""));
    for (slot, v) in out.iter_mut().zip(vals) {
        *slot = want_str(v)?;
    }
    Ok(out)
}

fn one_str(args: Vec<V<'_>>) -> Res<Cow<'_, str>> {
    let [s] = strs(args)?;
    Ok(s)
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `Trim*(s, arg)`: the result borrows from `s`.
fn trim_with<'a>(args: Vec<V<'a>>, f: for<'s> fn(&'s str, &str) -> &'s str) -> Res<V<'a>> {
    let [s, arg] = strs(args)?;
    Ok(V::str(match s {
        Cow::Borrowed(b) => Cow::Borrowed(f(b, &arg)),
        Cow::Owned(o) => Cow::Owned(f(&o, &arg).to_string()),
    }))
}

/// Go's `strings.Replace(s, old, new, n)`: n < 0 replaces all.
fn replace_n<'a>(_: &mut Env, args: Vec<V<'a>>) -> Res<V<'a>> {
    let [s, old, new, n] = take(args)?;
    let n = want_int(&n)?;
    let (s, old, new) = (want_str(s)?, want_str(old)?, want_str(new)?);
    Ok(V::str(if n < 0 {
        s.replace(&*old, &new)
    } else {
        s.replacen(&*old, &new, n as usize)
    }))
}

/// Go's `eq`: true if the first argument equals any of the others.
fn eq(args: &[V]) -> Res<bool> {
    let Some((first, rest)) = args.split_first() else {
        return Err("missing argument for comparison".into());
    };
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    for other in rest {
        let equal = match (first, other) {
            (V::Nil, V::Nil) => true,
            (V::Nil, _) | (_, V::Nil) => false,
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::Int(a), V::Int(b)) => a == b,
            (V::Float(a), V::Float(b)) => a == b,
            (V::Str(a), V::Str(b)) => a == b,
            (V::Time(a), V::Time(b)) => a.timestamp() == b.timestamp(),
            (V::List(_) | V::Map(_), _) | (_, V::List(_) | V::Map(_)) => {
                return Err("non-comparable type".into())
            }
            _ => return Err("incompatible types for comparison".into()),
        };
        if equal {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Go's ordering for `lt`, `le`, `gt`, `ge`: numbers of one kind, or strings.
fn cmp2<'a>(args: Vec<V<'a>>, test: fn(Ordering) -> bool) -> Res<V<'a>> {
    let [a, b] = take(args)?;
    let ord = match (&a, &b) {
        (V::Int(x), V::Int(y)) => x.cmp(y),
        (V::Float(x), V::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (V::Str(x), V::Str(y)) => x.cmp(y),
        (V::Int(_) | V::Float(_) | V::Str(_), V::Int(_) | V::Float(_) | V::Str(_)) => {
            return Err("incompatible types for comparison".into())
        }
        _ => return Err("invalid type for comparison".into()),
    };
    Ok(V::Bool(test(ord)))
}

fn index<'a>(_: &mut Env, mut args: Vec<V<'a>>) -> Res<V<'a>> {
    if args.is_empty() {
        return Err("wrong number of args for index: want at least 1 got 0".into());
    }
    let mut item = args.remove(0);
    if let V::Nil = item {
        return Err("index of untyped nil".into());
    }
    for idx in args {
        item = match &item {
            V::List(l) => {
                let i = want_index(&idx, l.len())?;
                l[i].clone()
            }
            V::Str(s) => V::Int(s.as_bytes()[want_index(&idx, s.len())?] as i64),
            V::Map(m) => match idx {
                V::Str(k) => m.get(&*k).cloned().unwrap_or(V::Nil),
                other => {
                    return Err(format!(
                        "value has type {}; should be string",
                        other.type_name()
                    ))
                }
            },
            V::Nil => return Err("index of nil pointer".into()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn want_index(idx: &V, len: usize) -> Res<usize> {
    match idx {
        V::Int(i) if *i >= 0 && (*i as usize) < len => Ok(*i as usize),
        V::Int(i) => Err(format!("index out of range: {i}")),
        other => Err(format!(
            "cannot index slice/array with type {}",
            other.type_name()
        )),
    }
}

fn slice<'a>(_: &mut Env, mut args: Vec<V<'a>>) -> Res<V<'a>> {
    if args.is_empty() || args.len() > 3 {
        return Err("wrong number of args for slice".into());
    }
    let item = args.remove(0);
    let len = match &item {
        V::Str(s) => s.len(),
        V::List(l) => l.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut bounds = [0, len];
    for (slot, idx) in bounds.iter_mut().zip(&args) {
        let i = want_int(idx)?;
        if i < 0 || i as usize > len {
            return Err(format!("index out of range: {i}"));
        }
        *slot = i as usize;
    }
    if bounds[0] > bounds[1] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[0], bounds[1]
        ));
    }
    Ok(match item {
        V::Str(s) => {
            V::str(String::from_utf8_lossy(&s.as_bytes()[bounds[0]..bounds[1]]).into_owned())
        }
        V::List(l) => V::List(Rc::new(l[bounds[0]..bounds[1]].to_vec())),
        _ => unreachable!("checked above"),
    })
}

/// `fmt.Sprint` (spaces between operands that are not strings) or `fmt.Sprintln`.
pub fn sprint(args: &[V], line: bool) -> String {
    let mut out = String::new();
    for (i, v) in args.iter().enumerate() {
        let space = line
            || !matches!(
                (v, &args[i.saturating_sub(1)]),
                (V::Str(_), _) | (_, V::Str(_))
            );
        if i > 0 && space {
            out.push(' ');
        }
        v.write_go(&mut out);
    }
    if line {
        out.push('\n');
    }
    out
}

/// The argument of `html`/`urlquery`: a lone string, or `fmt.Sprint` of the arguments.
fn joined(args: &[V]) -> String {
    match args {
        [V::Str(s)] => s.to_string(),
        _ => sprint(args, false),
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Go's `time.RFC3339Nano`, split once.
pub fn rfc3339_nano() -> &'static Layout {
    static L: OnceLock<Layout> = OnceLock::new();
    L.get_or_init(|| Layout::new("2006-01-02T15:04:05.999999999Z07:00"))
}

/// The layout of Go's `Time.String()`.
pub fn time_string_layout() -> &'static Layout {
    static L: OnceLock<Layout> = OnceLock::new();
    L.get_or_init(|| Layout::new("2006-01-02 15:04:05.999999999 -0700 MST"))
}
