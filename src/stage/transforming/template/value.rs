//! Values while a template runs, and how Go prints them (`fmt`'s `%v`) and encodes them as JSON
//! (`encoding/json`, for sprig's `toJson`).
//!
//! Strings borrow from the template or the entry where they can. `Nil` stands for both Go's `nil` and
//! a missing map key ("invalid value"), which Go treats alike in every place a stage template can
//! reach, except printing: a pipeline that yields either prints `<no value>`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub enum V<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    List(Rc<Vec<V<'a>>>),
    Map(Rc<BTreeMap<String, V<'a>>>),
    Time(Rc<jiff::Zoned>),
}

impl<'a> V<'a> {
    pub fn str(s: impl Into<Cow<'a, str>>) -> V<'a> {
        V::Str(s.into())
    }

    /// Go's type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            V::Nil => "nil",
            V::Bool(_) => "bool",
            V::Int(_) => "int",
            V::Float(_) => "float64",
            V::Str(_) => "string",
            V::List(_) => "[]interface {}",
            V::Map(_) => "map[string]interface {}",
            V::Time(_) => "time.Time",
        }
    }

    /// Go's `truth`: false for nil, false, 0, "" and empty lists and maps.
    pub fn truth(&self) -> bool {
        match self {
            V::Nil => false,
            V::Bool(b) => *b,
            V::Int(i) => *i != 0,
            V::Float(f) => *f != 0.0,
            V::Str(s) => !s.is_empty(),
            V::List(l) => !l.is_empty(),
            V::Map(m) => !m.is_empty(),
            V::Time(_) => true,
        }
    }

    /// `fmt.Sprint(v)` / `%v`.
    pub fn write_go(&self, out: &mut String) {
        match self {
            V::Nil => out.push_str("<nil>"),
            V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            V::Int(i) => {
                let _ = write!(out, "{i}");
            }
            V::Float(f) => write_float_g(*f, out),
            V::Str(s) => out.push_str(s),
            V::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_go(out);
                }
                out.push(']');
            }
            V::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_go(out);
                }
                out.push(']');
            }
            V::Time(t) => write_time(t, out),
        }
    }

    /// sprig's `strval`: strings as they are, anything else as `%v`.
    pub fn to_str(&self) -> Cow<'_, str> {
        match self {
            V::Str(s) => Cow::Borrowed(s),
            v => {
                let mut out = String::new();
                v.write_go(&mut out);
                Cow::Owned(out)
            }
        }
    }

    /// `encoding/json.Marshal`; `html` escapes `<`, `>` and `&` as Go does by default.
    pub fn write_json(&self, out: &mut String, html: bool, indent: Option<usize>) {
        let newline = |out: &mut String, depth: usize| {
            if let Some(step) = indent {
                out.push('\n');
                out.extend(std::iter::repeat(' ').take(step * depth));
            }
        };
        self.write_json_at(out, html, indent, 0, &newline);
    }

    fn write_json_at(
        &self,
        out: &mut String,
        html: bool,
        indent: Option<usize>,
        depth: usize,
        newline: &dyn Fn(&mut String, usize),
    ) {
        match self {
            V::Nil => out.push_str("null"),
            V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            V::Int(i) => {
                let _ = write!(out, "{i}");
            }
            V::Float(f) => write_json_float(*f, out),
            V::Str(s) => write_json_string(s, out, html),
            V::Time(t) => {
                let mut s = String::new();
                super::funcs::rfc3339_nano().format(t, &mut s);
                write_json_string(&s, out, html);
            }
            V::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    v.write_json_at(out, html, indent, depth + 1, newline);
                }
                if !l.is_empty() {
                    newline(out, depth);
                }
                out.push(']');
            }
            V::Map(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    write_json_string(k, out, html);
                    out.push(':');
                    if indent.is_some() {
                        out.push(' ');
                    }
                    v.write_json_at(out, html, indent, depth + 1, newline);
                }
                if !m.is_empty() {
                    newline(out, depth);
                }
                out.push('}');
            }
        }
    }

    /// A JSON document as Go's `json.Unmarshal` into `interface{}` gives it (numbers are float64).
    pub fn from_json(v: serde_json::Value) -> V<'static> {
        match v {
            serde_json::Value::Null => V::Nil,
            serde_json::Value::Bool(b) => V::Bool(b),
            serde_json::Value::Number(n) => V::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => V::Str(Cow::Owned(s)),
            serde_json::Value::Array(a) => {
                V::List(Rc::new(a.into_iter().map(V::from_json).collect()))
            }
            serde_json::Value::Object(o) => V::Map(Rc::new(
                o.into_iter().map(|(k, v)| (k, V::from_json(v))).collect(),
            )),
        }
    }
}

/// Go's `Time.String()` (without the monotonic clock reading).
pub fn write_time(t: &jiff::Zoned, out: &mut String) {
    super::funcs::time_string_layout().format(t, out);
}

/// Shortest digits and decimal exponent of a finite, non-zero `f` (`1.5e3` → ("15", 3)).
fn shortest(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    (mantissa.replace('.', ""), exp.parse().unwrap_or(0))
}

/// Digits in exponent form, as Go writes them: `1.5e+03`, `1e-07`.
fn write_exp(digits: &str, exp: i32, out: &mut String) {
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
}

fn write_special(f: f64, out: &mut String) -> bool {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
    } else if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0" } else { "0" });
    } else {
        return false;
    }
    true
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which `%v` uses: exponent form below 1e-4 and from
/// 1e6 up (`1e+06`, `1.234567e+06`).
pub fn write_float_g(f: f64, out: &mut String) {
    if write_special(f, out) {
        return;
    }
    let (digits, exp) = shortest(f);
    if f < 0.0 {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        write_exp(&digits, exp, out);
    } else {
        let _ = write!(out, "{}", f.abs());
    }
}

/// `encoding/json`'s float: decimal unless below 1e-6 or from 1e21 up, then `1e-07` → `1e-7`.
fn write_json_float(f: f64, out: &mut String) {
    if !f.is_finite() {
        out.push_str("null");
        return;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (digits, exp) = shortest(f);
        if f < 0.0 {
            out.push('-');
        }
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
        // Go trims `e-07` to `e-7`.
        if exp < 0 && exp > -10 {
            let n = out.len();
            out.replace_range(n - 2..n - 1, "");
        }
    } else {
        let _ = write!(out, "{f}");
    }
}

fn write_json_string(s: &str, out: &mut String, html: bool) {
    crate::stage::gojson::write_str_escaping(out, s, html);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(f: f64) -> String {
        let mut s = String::new();
        write_float_g(f, &mut s);
        s
    }

    fn json(v: V) -> String {
        let mut s = String::new();
        v.write_json(&mut s, true, None);
        s
    }

    #[test]
    fn floats_print_as_go() {
        for (f, want) in [
            (1.0, "1"),
            (0.5, "0.5"),
            (123456.0, "123456"),
            (999999.5, "999999.5"),
            (1234567.0, "1.234567e+06"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(g(f), want, "{f}");
        }
    }

    #[test]
    fn json_as_go_encodes() {
        assert_eq!(json(V::Float(1e-7)), "1e-7");
        assert_eq!(json(V::Float(1e21)), "1e+21");
        assert_eq!(json(V::Float(12.5)), "12.5");
        assert_eq!(json(V::str("<a&b>\"\n")), r#""\u003ca\u0026b\u003e\"\n""#);
        let map = V::Map(Rc::new(BTreeMap::from([
            ("b".to_string(), V::Int(1)),
            (
                "a".to_string(),
                V::List(Rc::new(vec![V::Nil, V::Bool(true)])),
            ),
        ])));
        assert_eq!(json(map.clone()), r#"{"a":[null,true],"b":1}"#);
        let mut pretty = String::new();
        map.write_json(&mut pretty, true, Some(2));
        assert_eq!(
            pretty,
            "{\n  \"a\": [\n    null,\n    true\n  ],\n  \"b\": 1\n}"
        );
        let mut s = String::new();
        map.write_go(&mut s);
        assert_eq!(s, "map[a:[<nil> true] b:1]");
    }
}
