//! The part of sprig v3 (`Masterminds/sprig`, `TxtFuncMap`) that Promtail's docs and typical
//! pipelines use: defaults and JSON, strings, integer math, encodings, regexes, lists and dicts, and
//! dates. Behaviour follows sprig's: values are converted with its `strval` / `toInt64` (cast)
//! rules, `fromJson` of bad JSON gives nil, `b64dec` of bad input gives the error text.
//!
//! Not implemented (an error when the config loads): sprig's other ~130 functions (crypto, UUIDs,
//! random strings, semver, paths, reflection, float math, mutating dict functions such as `set`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine as _;
use sha2::Digest as _;

use super::funcs::{hex, strs, take, want_int, want_str, Func, FuncDef, Kind, Res};
use super::lex::parse_go_int;
use super::value::V;
use crate::stage::transforming::timestamp::layout::Layout;

/// The largest string `repeat` builds.
const REPEAT_MAX_BYTES: u128 = 16 << 20;

const fn f(name: &'static str, func: Func) -> FuncDef {
    FuncDef {
        name,
        kind: Kind::Plain(func),
    }
}

pub static SPRIG: &[FuncDef] = &[
    // Defaults, flow and JSON.
    f("default", |_, mut a| {
        if a.is_empty() {
            return Err("wrong number of args for default: want at least 1 got 0".into());
        }
        let d = a.remove(0);
        Ok(match a.into_iter().next() {
            Some(given) if given.truth() => given,
            _ => d,
        })
    }),
    f("empty", |_, a| {
        let [v] = take(a)?;
        Ok(V::Bool(!v.truth()))
    }),
    f("coalesce", |_, a| {
        Ok(a.into_iter().find(V::truth).unwrap_or(V::Nil))
    }),
    f("ternary", |_, a| {
        let [yes, no, cond] = take(a)?;
        match cond {
            V::Bool(true) => Ok(yes),
            V::Bool(false) => Ok(no),
            other => Err(format!(
                "wrong type for value; expected bool; got {}",
                other.type_name()
            )),
        }
    }),
    f("toJson", |_, a| json(a, true, None)),
    f("toRawJson", |_, a| json(a, false, None)),
    f("toPrettyJson", |_, a| json(a, true, Some(2))),
    f("fromJson", |_, a| {
        let [s] = strs(a)?;
        Ok(serde_json::from_str(&s).map_or(V::Nil, V::from_json))
    }),
    f("mustFromJson", |_, a| {
        let [s] = strs(a)?;
        serde_json::from_str(&s)
            .map(V::from_json)
            .map_err(|e| e.to_string())
    }),
    // Strings.
    f("toString", |_, a| {
        let [v] = take(a)?;
        Ok(V::str(v.to_str().into_owned()))
    }),
    f("upper", |_, a| str_fn(a, |s| s.to_uppercase())),
    f("lower", |_, a| str_fn(a, |s| s.to_lowercase())),
    f("title", |_, a| str_fn(a, title)),
    f("trim", |_, a| str_fn(a, |s| s.trim().to_string())),
    f("nospace", |_, a| {
        str_fn(a, |s| s.chars().filter(|c| !c.is_whitespace()).collect())
    }),
    f("trimAll", |_, a| {
        let [cut, s] = strs(a)?;
        Ok(V::str(s.trim_matches(|c| cut.contains(c)).to_string()))
    }),
    f("trimPrefix", |_, a| {
        let [p, s] = strs(a)?;
        Ok(V::str(s.strip_prefix(&*p).unwrap_or(&s).to_string()))
    }),
    f("trimSuffix", |_, a| {
        let [p, s] = strs(a)?;
        Ok(V::str(s.strip_suffix(&*p).unwrap_or(&s).to_string()))
    }),
    f("contains", |_, a| {
        let [sub, s] = strs(a)?;
        Ok(V::Bool(s.contains(&*sub)))
    }),
    f("hasPrefix", |_, a| {
        let [p, s] = strs(a)?;
        Ok(V::Bool(s.starts_with(&*p)))
    }),
    f("hasSuffix", |_, a| {
        let [p, s] = strs(a)?;
        Ok(V::Bool(s.ends_with(&*p)))
    }),
    f("replace", |_, a| {
        let [old, new, s] = strs(a)?;
        Ok(V::str(s.replace(&*old, &new)))
    }),
    f("repeat", |_, a| {
        let [n, s] = take(a)?;
        let n = want_int(&n)?;
        if n < 0 {
            return Err("strings: negative Repeat count".into());
        }
        let s = want_str(s)?;
        // A bound Go does not have: a count read from a log line must not exhaust memory.
        if (n as u128) * (s.len() as u128) > REPEAT_MAX_BYTES {
            return Err(format!("repeat: result over {REPEAT_MAX_BYTES} bytes"));
        }
        Ok(V::str(s.repeat(n as usize)))
    }),
    f("substr", |_, a| {
        let [start, end, s] = take(a)?;
        let (start, end, s) = (want_int(&start)?, want_int(&end)?, want_str(s)?);
        let len = s.len() as i64;
        let (from, to) = if start < 0 {
            (0, end)
        } else if end < 0 || end > len {
            (start, len)
        } else {
            (start, end)
        };
        if from < 0 || to > len || from > to {
            return Err(format!("slice bounds out of range [{from}:{to}]"));
        }
        Ok(V::str(bytes_str(&s, from as usize, to as usize)))
    }),
    f("trunc", |_, a| {
        let [c, s] = take(a)?;
        let (c, s) = (want_int(&c)?, want_str(s)?);
        let len = s.len() as i64;
        Ok(V::str(if c < 0 && len + c > 0 {
            bytes_str(&s, (len + c) as usize, len as usize)
        } else if c >= 0 && len > c {
            bytes_str(&s, 0, c as usize)
        } else {
            s.into_owned()
        }))
    }),
    f("indent", |_, a| indent(a, false)),
    f("nindent", |_, a| indent(a, true)),
    f("quote", |_, a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, V::Nil))
            .map(|v| {
                let mut q = String::new();
                crate::entry::go_quote(&mut q, &v.to_str());
                q
            })
            .collect();
        Ok(V::str(parts.join(" ")))
    }),
    f("squote", |_, a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !matches!(v, V::Nil))
            .map(|v| format!("'{}'", v.to_str()))
            .collect();
        Ok(V::str(parts.join(" ")))
    }),
    f("cat", |_, a| {
        let parts: Vec<Cow<str>> = a
            .iter()
            .filter(|v| !matches!(v, V::Nil))
            .map(V::to_str)
            .collect();
        Ok(V::str(parts.join(" ")))
    }),
    f("split", |_, a| {
        let [sep, s] = strs(a)?;
        let map = go_split(&s, &sep)
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), V::str(p.to_string())))
            .collect();
        Ok(V::Map(Rc::new(map)))
    }),
    f("splitList", |_, a| {
        let [sep, s] = strs(a)?;
        let list = go_split(&s, &sep)
            .into_iter()
            .map(|p| V::str(p.to_string()))
            .collect();
        Ok(V::List(Rc::new(list)))
    }),
    f("join", |_, a| {
        let [sep, v] = take(a)?;
        let sep = want_str(sep)?;
        let parts: Vec<String> = match &v {
            V::List(l) => l
                .iter()
                .filter(|x| !matches!(x, V::Nil))
                .map(|x| x.to_str().into_owned())
                .collect(),
            V::Nil => Vec::new(),
            other => vec![other.to_str().into_owned()],
        };
        Ok(V::str(parts.join(&*sep)))
    }),
    // Integer math (sprig converts with cast.ToInt64: "12" is 12, "abc" is 0).
    f("add", |_, a| {
        Ok(V::Int(a.iter().map(to_i64).fold(0i64, i64::wrapping_add)))
    }),
    f("add1", |_, a| {
        let [v] = take(a)?;
        Ok(V::Int(to_i64(&v).wrapping_add(1)))
    }),
    f("sub", |_, a| {
        let [x, y] = take(a)?;
        Ok(V::Int(to_i64(&x).wrapping_sub(to_i64(&y))))
    }),
    f("mul", |_, a| {
        if a.is_empty() {
            return Err("wrong number of args for mul: want at least 1 got 0".into());
        }
        Ok(V::Int(a.iter().map(to_i64).fold(1i64, i64::wrapping_mul)))
    }),
    f("div", |_, a| {
        let [x, y] = take(a)?;
        to_i64(&x)
            .checked_div(to_i64(&y))
            .map(V::Int)
            .ok_or_else(|| "runtime error: integer divide by zero".into())
    }),
    f("mod", |_, a| {
        let [x, y] = take(a)?;
        to_i64(&x)
            .checked_rem(to_i64(&y))
            .map(V::Int)
            .ok_or_else(|| "runtime error: integer divide by zero".into())
    }),
    f("max", |_, a| min_max(a, true)),
    f("min", |_, a| min_max(a, false)),
    f("int", |_, a| {
        let [v] = take(a)?;
        Ok(V::Int(to_i64(&v)))
    }),
    f("int64", |_, a| {
        let [v] = take(a)?;
        Ok(V::Int(to_i64(&v)))
    }),
    f("float64", |_, a| {
        let [v] = take(a)?;
        Ok(V::Float(to_f64(&v)))
    }),
    f("atoi", |_, a| {
        let [s] = strs(a)?;
        Ok(V::Int(s.parse().unwrap_or(0)))
    }),
    // Encodings and hashes.
    f("b64enc", |_, a| {
        let [s] = strs(a)?;
        Ok(V::str(
            base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
        ))
    }),
    f("b64dec", |_, a| {
        let [s] = strs(a)?;
        Ok(V::str(
            match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => b64_error(&e),
            },
        ))
    }),
    f("sha256sum", |_, a| {
        let [s] = strs(a)?;
        Ok(V::str(hex(&sha2::Sha256::digest(s.as_bytes()))))
    }),
    // Regular expressions (RE2 syntax, as Go's regexp).
    f("regexMatch", |env, a| {
        let [re, s] = strs(a)?;
        Ok(V::Bool(env.regex(&re).is_ok_and(|r| r.is_match(&s))))
    }),
    f("mustRegexMatch", |env, a| {
        let [re, s] = strs(a)?;
        Ok(V::Bool(env.regex(&re)?.is_match(&s)))
    }),
    f("regexFind", |env, a| {
        let [re, s] = strs(a)?;
        let found = env.regex(&re)?.find(&s).map(|m| m.as_str().to_string());
        Ok(V::str(found.unwrap_or_default()))
    }),
    f("regexFindAll", |env, a| {
        let [re, s, n] = take(a)?;
        let (re, s, n) = (want_str(re)?, want_str(s)?, want_int(&n)?);
        let limit = if n < 0 { usize::MAX } else { n as usize };
        let found = env
            .regex(&re)?
            .find_iter(&s)
            .take(limit)
            .map(|m| V::str(m.as_str().to_string()))
            .collect();
        Ok(V::List(Rc::new(found)))
    }),
    f("regexSplit", |env, a| {
        let [re, s, n] = take(a)?;
        let (re, s, n) = (want_str(re)?, want_str(s)?, want_int(&n)?);
        let re = env.regex(&re)?;
        let parts: Vec<V> = if n < 0 {
            re.split(&s).map(|p| V::str(p.to_string())).collect()
        } else {
            re.splitn(&s, n as usize)
                .map(|p| V::str(p.to_string()))
                .collect()
        };
        Ok(V::List(Rc::new(parts)))
    }),
    f("regexQuoteMeta", |_, a| str_fn(a, regex::escape)),
    // Lists and dicts.
    f("list", |_, a| Ok(V::List(Rc::new(a)))),
    f("first", |_, a| {
        list_pick(a, |l| l.first().cloned().unwrap_or(V::Nil))
    }),
    f("last", |_, a| {
        list_pick(a, |l| l.last().cloned().unwrap_or(V::Nil))
    }),
    f("rest", |_, a| {
        list_pick(a, |l| V::List(Rc::new(l.get(1..).unwrap_or(&[]).to_vec())))
    }),
    f("initial", |_, a| {
        list_pick(a, |l| {
            V::List(Rc::new(l[..l.len().saturating_sub(1)].to_vec()))
        })
    }),
    f("has", |_, a| {
        let [needle, haystack] = take(a)?;
        Ok(V::Bool(match &haystack {
            V::List(l) => l.iter().any(|v| deep_equal(v, &needle)),
            V::Nil => false,
            other => return Err(format!("Cannot find has on type {}", other.type_name())),
        }))
    }),
    f("dict", |_, a| {
        let mut map = BTreeMap::new();
        let mut it = a.into_iter();
        while let Some(k) = it.next() {
            map.insert(k.to_str().into_owned(), it.next().unwrap_or(V::str("")));
        }
        Ok(V::Map(Rc::new(map)))
    }),
    f("get", |_, a| {
        let [d, k] = take(a)?;
        let k = want_str(k)?;
        Ok(want_map(&d)?.get(&*k).cloned().unwrap_or(V::str("")))
    }),
    f("hasKey", |_, a| {
        let [d, k] = take(a)?;
        let k = want_str(k)?;
        Ok(V::Bool(want_map(&d)?.contains_key(&*k)))
    }),
    f("keys", |_, a| {
        let mut keys = Vec::new();
        for d in &a {
            keys.extend(want_map(d)?.keys().map(|k| V::str(k.clone())));
        }
        Ok(V::List(Rc::new(keys)))
    }),
    // Dates, in the host's time zone as Go's time.Local.
    f("now", |_, a| {
        take::<0>(a)?;
        Ok(V::Time(Rc::new(jiff::Zoned::now())))
    }),
    f("date", |_, a| {
        let [layout, date] = take(a)?;
        format_date(&want_str(layout)?, &date, jiff::tz::TimeZone::system())
    }),
    f("dateInZone", |_, a| {
        let [layout, date, zone] = take(a)?;
        let zone = want_str(zone)?;
        let tz = jiff::tz::TimeZone::get(&zone).unwrap_or(jiff::tz::TimeZone::UTC);
        format_date(&want_str(layout)?, &date, tz)
    }),
    f("unixEpoch", |_, a| {
        let [t] = take(a)?;
        match t {
            V::Time(t) => Ok(V::str(t.timestamp().as_second().to_string())),
            other => Err(format!(
                "wrong type for value; expected time.Time; got {}",
                other.type_name()
            )),
        }
    }),
    f("toDate", |_, a| {
        let [layout, s] = strs(a)?;
        let tz = jiff::tz::TimeZone::system();
        let parsed = Layout::new(&layout).parse(&s).ok().and_then(|p| {
            let ns = crate::stage::transforming::timestamp::resolve_in(p, &tz).ok()?;
            jiff::Timestamp::from_nanosecond(ns as i128).ok()
        });
        let zero = jiff::civil::date(1, 1, 1)
            .at(0, 0, 0, 0)
            .to_zoned(jiff::tz::TimeZone::UTC);
        Ok(V::Time(Rc::new(match parsed {
            Some(ts) => ts.to_zoned(tz),
            None => zero.map_err(|e| e.to_string())?,
        })))
    }),
];

fn str_fn<'a>(args: Vec<V<'a>>, f: fn(&str) -> String) -> Res<V<'a>> {
    let [s] = strs(args)?;
    Ok(V::str(f(&s)))
}

fn json<'a>(args: Vec<V<'a>>, html: bool, indent: Option<usize>) -> Res<V<'a>> {
    let [v] = take(args)?;
    let mut out = String::new();
    v.write_json(&mut out, html, indent);
    Ok(V::str(out))
}

/// Go's deprecated `strings.Title`: upper-case the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

/// Byte slicing as Go does it; a cut inside a character is replaced by U+FFFD.
fn bytes_str(s: &str, from: usize, to: usize) -> String {
    String::from_utf8_lossy(&s.as_bytes()[from..to]).into_owned()
}

fn indent<'a>(args: Vec<V<'a>>, newline: bool) -> Res<V<'a>> {
    let [n, s] = take(args)?;
    let pad = " ".repeat(want_int(&n)?.max(0) as usize);
    let body = format!("{pad}{}", want_str(s)?.replace('\n', &format!("\n{pad}")));
    Ok(V::str(if newline { format!("\n{body}") } else { body }))
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn go_split<'s>(s: &'s str, sep: &str) -> Vec<&'s str> {
    if sep.is_empty() {
        return s
            .char_indices()
            .map(|(i, c)| &s[i..i + c.len_utf8()])
            .collect();
    }
    s.split(sep).collect()
}

/// cast.ToInt64: numbers, bools and numeric strings (base prefixes allowed); anything else is 0.
pub fn to_i64(v: &V) -> i64 {
    match v {
        V::Int(i) => *i,
        V::Float(f) => *f as i64,
        V::Bool(b) => *b as i64,
        V::Str(s) => parse_go_int(trim_zero_decimal(s)).unwrap_or(0),
        _ => 0,
    }
}

/// cast's `trimZeroDecimal`: `12.00` → `12`, `12.50` stays.
fn trim_zero_decimal(s: &str) -> &str {
    let mut found_zero = false;
    for (i, c) in s.bytes().enumerate().rev() {
        match c {
            b'.' if found_zero => return &s[..i],
            b'.' => return s,
            b'0' => found_zero = true,
            _ => return s,
        }
    }
    s
}

/// cast.ToFloat64.
pub fn to_f64(v: &V) -> f64 {
    match v {
        V::Int(i) => *i as f64,
        V::Float(f) => *f,
        V::Bool(b) => *b as i64 as f64,
        V::Str(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn min_max<'a>(args: Vec<V<'a>>, max: bool) -> Res<V<'a>> {
    let mut it = args.iter().map(to_i64);
    let first = it
        .next()
        .ok_or("wrong number of args: want at least 1 got 0")?;
    Ok(V::Int(it.fold(first, |a, b| {
        if max {
            a.max(b)
        } else {
            a.min(b)
        }
    })))
}

fn list_pick<'a>(args: Vec<V<'a>>, pick: fn(&[V<'a>]) -> V<'a>) -> Res<V<'a>> {
    let [l] = take(args)?;
    match &l {
        V::List(items) => Ok(pick(items)),
        other => Err(format!("Cannot find on type {}", other.type_name())),
    }
}

fn want_map<'v, 'a>(v: &'v V<'a>) -> Res<&'v BTreeMap<String, V<'a>>> {
    match v {
        V::Map(m) => Ok(m),
        other => Err(format!(
            "wrong type for value; expected map[string]interface {{}}; got {}",
            other.type_name()
        )),
    }
}

fn deep_equal(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Nil, V::Nil) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Int(x), V::Int(y)) => x == y,
        (V::Float(x), V::Float(y)) => x == y,
        (V::Str(x), V::Str(y)) => x == y,
        (V::List(x), V::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_equal(p, q))
        }
        (V::Map(x), V::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        _ => false,
    }
}

/// sprig's `formatDate`: a time, or Unix seconds; anything else means now.
fn format_date<'a>(layout: &str, date: &V, tz: jiff::tz::TimeZone) -> Res<V<'a>> {
    let t = match date {
        V::Time(t) => t.with_time_zone(tz),
        V::Int(secs) => jiff::Timestamp::from_second(*secs)
            .map_err(|e| e.to_string())?
            .to_zoned(tz),
        _ => jiff::Zoned::now().with_time_zone(tz),
    };
    let mut out = String::new();
    Layout::new(layout).format(&t, &mut out);
    Ok(V::str(out))
}

/// Go's base64 error text: "illegal base64 data at input byte N".
fn b64_error(e: &base64::DecodeError) -> String {
    let at = match e {
        base64::DecodeError::InvalidByte(i, _) | base64::DecodeError::InvalidLastSymbol(i, _) => *i,
        base64::DecodeError::InvalidLength(n) => *n,
        base64::DecodeError::InvalidPadding => 0,
    };
    format!("illegal base64 data at input byte {at}")
}
