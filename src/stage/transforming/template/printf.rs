//! Go's `fmt.Sprintf` for template values: verbs `v s q d b o x X c U e E f F g G t %`, flags
//! `- + # 0 space`, width and precision, and Go's `%!d(string=x)` / `%!s(MISSING)` /
//! `%!(EXTRA ...)` markers for mismatches.

use std::fmt::Write as _;

use super::value::{write_float_g, V};

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

pub fn sprintf(format: &str, args: &[V]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut next = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::CharIndices>| {
            let mut n: Option<usize> = None;
            while let Some(&(_, d)) = chars.peek() {
                let Some(d) = d.to_digit(10) else { break };
                n = Some(n.unwrap_or(0) * 10 + d as usize);
                chars.next();
            }
            n
        };
        spec.width = number(&mut chars);
        if chars.peek().map(|&(_, c)| c) == Some('.') {
            chars.next();
            spec.prec = Some(number(&mut chars).unwrap_or(0));
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next) {
            Some(arg) => format_one(&mut out, &spec, verb, arg),
            None => {
                let _ = write!(out, "%!{verb}(MISSING)");
            }
        }
        next += 1;
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, arg) in args[next..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}=", arg.type_name());
            arg.write_go(&mut out);
        }
        out.push(')');
    }
    out
}

fn format_one(out: &mut String, spec: &Spec, verb: char, arg: &V) {
    let body = match (arg, verb) {
        (V::Nil, 'v') => Some("<nil>".to_string()),
        (V::Bool(b), 'v' | 't') => Some(b.to_string()),
        (V::Int(i), _) => int_verb(*i, verb, spec),
        (V::Float(f), _) => float_verb(*f, verb, spec),
        (V::Str(s), 'v' | 's') => Some(match spec.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.to_string(),
        }),
        (V::Str(s), 'q') => {
            let mut q = String::new();
            crate::entry::go_quote(&mut q, s);
            Some(q)
        }
        (V::Str(s), 'x' | 'X') => {
            let hex = super::funcs::hex(s.as_bytes());
            Some(if verb == 'X' { hex.to_uppercase() } else { hex })
        }
        (V::List(_) | V::Map(_) | V::Time(_), 'v' | 's') => {
            let mut s = String::new();
            arg.write_go(&mut s);
            Some(s)
        }
        _ => None,
    };
    match body {
        Some(body) => {
            let numeric = matches!(arg, V::Int(_) | V::Float(_)) && verb != 'c' && verb != 'q';
            pad(out, &body, spec, numeric);
        }
        None => {
            let _ = write!(out, "%!{verb}(");
            if let V::Nil = arg {
                out.push_str("<nil>");
            } else {
                let _ = write!(out, "{}=", arg.type_name());
                arg.write_go(out);
            }
            out.push(')');
        }
    }
}

fn sign(negative: bool, spec: &Spec) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn int_verb(i: i64, verb: char, spec: &Spec) -> Option<String> {
    let abs = i.unsigned_abs();
    let (prefix, digits) = match verb {
        'v' | 'd' => ("", abs.to_string()),
        'b' => (if spec.sharp { "0b" } else { "" }, format!("{abs:b}")),
        'o' => (if spec.sharp { "0" } else { "" }, format!("{abs:o}")),
        'O' => ("0o", format!("{abs:o}")),
        'x' => (if spec.sharp { "0x" } else { "" }, format!("{abs:x}")),
        'X' => (if spec.sharp { "0X" } else { "" }, format!("{abs:X}")),
        'c' => return Some(char::from_u32(i as u32).unwrap_or('\u{FFFD}').to_string()),
        'q' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{FFFD}');
            return Some(format!("'{}'", c.escape_default()));
        }
        'U' => return Some(format!("U+{:04X}", i)),
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => return None,
        _ => return None,
    };
    let digits = match spec.prec {
        Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
        _ => digits,
    };
    Some(format!("{}{prefix}{digits}", sign(i < 0, spec)))
}

fn float_verb(f: f64, verb: char, spec: &Spec) -> Option<String> {
    if !f.is_finite() {
        let s = if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        return matches!(verb, 'v' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G').then(|| s.to_string());
    }
    let neg = f.is_sign_negative();
    let abs = f.abs();
    let body = match verb {
        'v' | 'g' | 'G' if spec.prec.is_none() => {
            let mut s = String::new();
            write_float_g(abs, &mut s);
            if verb == 'G' {
                s = s.to_uppercase();
            }
            s
        }
        'g' | 'G' => {
            // %.Ng: N significant digits, exponent form when the exponent is < -4 or >= N.
            let p = spec.prec.unwrap_or(6).max(1);
            let e = format!("{:.*e}", p - 1, abs);
            let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
            let exp: i32 = exp.parse().unwrap_or(0);
            let mut s = if exp < -4 || exp >= p as i32 {
                let m = mantissa.trim_end_matches('0').trim_end_matches('.');
                format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
            } else {
                let decimals = (p as i32 - 1 - exp).max(0) as usize;
                let s = format!("{abs:.decimals$}");
                if s.contains('.') {
                    s.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    s
                }
            };
            if verb == 'G' {
                s = s.to_uppercase();
            }
            s
        }
        'e' | 'E' => {
            let p = spec.prec.unwrap_or(6);
            let e = format!("{abs:.p$e}");
            let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
            let exp: i32 = exp.parse().unwrap_or(0);
            let s = format!(
                "{mantissa}e{}{:02}",
                if exp < 0 { '-' } else { '+' },
                exp.abs()
            );
            if verb == 'E' {
                s.to_uppercase()
            } else {
                s
            }
        }
        'f' | 'F' => {
            let p = spec.prec.unwrap_or(6);
            format!("{abs:.p$}")
        }
        _ => return None,
    };
    Some(format!("{}{body}", sign(neg, spec)))
}

/// Pad to the width: spaces on the left (right with `-`), or zeros after the sign for numbers.
fn pad(out: &mut String, body: &str, spec: &Spec, numeric: bool) {
    let len = body.chars().count();
    let Some(width) = spec.width.filter(|&w| w > len) else {
        out.push_str(body);
        return;
    };
    let fill = width - len;
    if spec.minus {
        out.push_str(body);
        out.extend(std::iter::repeat(' ').take(fill));
    } else if spec.zero && numeric {
        let sign_len = body
            .chars()
            .next()
            .filter(|c| matches!(c, '-' | '+' | ' '))
            .map_or(0, |_| 1);
        out.push_str(&body[..sign_len]);
        out.extend(std::iter::repeat('0').take(fill));
        out.push_str(&body[sign_len..]);
    } else {
        out.extend(std::iter::repeat(' ').take(fill));
        out.push_str(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sprintf_as_go() {
        let s = |v: &str| V::str(v.to_string());
        let cases: Vec<(&str, Vec<V>, &str)> = vec![
            ("%s-%d", vec![s("a"), V::Int(5)], "a-5"),
            ("%5s|%-5s|", vec![s("ab"), s("cd")], "   ab|cd   |"),
            (
                "%05d %+d %x %X %o %b",
                vec![
                    V::Int(-42),
                    V::Int(3),
                    V::Int(255),
                    V::Int(255),
                    V::Int(8),
                    V::Int(5),
                ],
                "-0042 +3 ff FF 10 101",
            ),
            (
                "%.2f %e %g %v",
                vec![
                    V::Float(1.23456),
                    V::Float(1234.5),
                    V::Float(0.000012),
                    V::Float(2.5),
                ],
                "1.23 1.234500e+03 1.2e-05 2.5",
            ),
            ("%.3g", vec![V::Float(1234.5678)], "1.23e+03"),
            (
                "%q %v %t",
                vec![s("hi\n"), V::Bool(true), V::Bool(false)],
                "\"hi\\n\" true false",
            ),
            ("%d", vec![s("x")], "%!d(string=x)"),
            ("%s %s", vec![s("x")], "x %!s(MISSING)"),
            ("%s", vec![s("x"), V::Int(1)], "x%!(EXTRA int=1)"),
            ("%v %s", vec![V::Nil, V::Nil], "<nil> %!s(<nil>)"),
            ("100%%", vec![], "100%"),
            ("%.2s", vec![s("abcdef")], "ab"),
            ("%c%c", vec![V::Int(72), V::Int(105)], "Hi"),
        ];
        for (format, args, want) in cases {
            assert_eq!(sprintf(format, &args), want, "{format}");
        }
    }
}
