//! Evaluation of parsed `${...}` nodes: drone's `template.go` and `funcs.go` (the bash-like string
//! functions), plus its fork of Go's `path.Match` used by `#`, `##`, `%` and `%%`. Everything works on
//! bytes because drone slices Go strings by byte.

use super::{decode_rune, Node};

pub(super) fn eval(node: &Node, mapper: &dyn Fn(&str) -> String) -> Vec<u8> {
    match node {
        Node::Text(text) => text.clone(),
        Node::Func { param, name, args } => {
            let args: Vec<Vec<u8>> = args.iter().map(|arg| eval(arg, mapper)).collect();
            let value = mapper(param).into_bytes();
            apply(name, &value, &args)
        }
    }
}

/// drone's `lookupFunc`: every operator it does not know (including `:?` and `:+`) is "default".
fn apply(name: &str, s: &[u8], args: &[Vec<u8>]) -> Vec<u8> {
    match name {
        "," => map_first_rune(s, |c| c.to_lowercase().collect()),
        ",," => String::from_utf8_lossy(s).to_lowercase().into_bytes(),
        "^" => map_first_rune(s, |c| c.to_uppercase().collect()),
        "^^" => String::from_utf8_lossy(s).to_uppercase().into_bytes(),
        "#" if args.is_empty() => s.len().to_string().into_bytes(),
        "#" => trim_shortest(s, &args[0]),
        "##" => trim_longest(s, &args[0]),
        "%" => reversed(&trim_shortest(&reversed(s), &reversed(&args[0]))),
        "%%" => reversed(&trim_longest(&reversed(s), &reversed(&args[0]))),
        ":" => substr(s, args),
        "/#" if args.len() == 2 && s.starts_with(&args[0]) => {
            replace(s, &args[0], &args[1], Some(1))
        }
        "/%" if args.len() == 2 && s.ends_with(&args[0]) => {
            [&s[..s.len() - args[0].len()], &args[1][..]].concat()
        }
        "/#" | "/%" => s.to_vec(),
        "/" | "//" => {
            let limit = if name == "/" { Some(1) } else { None };
            match args {
                [] => s.to_vec(),
                [old] => replace(s, old, b"", limit),
                [old, new, ..] => replace(s, old, new, limit),
            }
        }
        _ if s.is_empty() && !args.is_empty() => args.concat(),
        _ => s.to_vec(),
    }
}

fn map_first_rune(s: &[u8], f: impl Fn(char) -> String) -> Vec<u8> {
    if s.is_empty() {
        return Vec::new();
    }
    let (r, n) = decode_rune(s);
    [f(r).as_bytes(), &s[n..]].concat()
}

/// `${V:pos}` / `${V:pos:len}` over bytes; an unparsable number returns the value unchanged, like bash.
fn substr(s: &[u8], args: &[Vec<u8>]) -> Vec<u8> {
    let atoi = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
    };
    let len = s.len() as i64;
    let Some(mut pos) = args.first().and_then(|a| atoi(a)) else {
        return s.to_vec();
    };
    if pos < 0 {
        pos = (len + pos).max(0);
    }
    let tail = |pos: i64| {
        if pos < len {
            s[pos as usize..].to_vec()
        } else {
            Vec::new()
        }
    };
    let Some(arg) = args.get(1) else {
        return tail(pos);
    };
    let Some(length) = atoi(arg) else {
        return s.to_vec();
    };
    if pos.saturating_add(length) >= len {
        return tail(pos);
    }
    if length < 0 {
        return Vec::new(); // Go would panic on s[pos:pos+len] with len < 0; there is nothing sane to return
    }
    s[pos as usize..(pos + length) as usize].to_vec()
}

/// Go's `strings.Replace`; an empty `old` inserts `new` at every rune boundary.
fn replace(s: &[u8], old: &[u8], new: &[u8], limit: Option<usize>) -> Vec<u8> {
    let limit = limit.unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(s.len());
    let (mut i, mut done) = (0, 0);
    if old.is_empty() {
        while done < limit && i <= s.len() {
            out.extend_from_slice(new);
            done += 1;
            if i == s.len() {
                return out;
            }
            let (_, n) = decode_rune(&s[i..]);
            out.extend_from_slice(&s[i..i + n]);
            i += n;
        }
        out.extend_from_slice(&s[i..]);
        return out;
    }
    while done < limit {
        let Some(at) = s[i..].windows(old.len()).position(|w| w == old) else {
            break;
        };
        out.extend_from_slice(&s[i..i + at]);
        out.extend_from_slice(new);
        i += at + old.len();
        done += 1;
    }
    out.extend_from_slice(&s[i..]);
    out
}

fn reversed(s: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(s)
        .chars()
        .rev()
        .collect::<String>()
        .into_bytes()
}

/// `${V#pat}`: drops the shortest non-empty prefix matching the glob (drone never tries the empty one).
fn trim_shortest(s: &[u8], pattern: &[u8]) -> Vec<u8> {
    let mut shortest = None;
    for end in (1..=s.len()).rev() {
        match glob_match(pattern, &s[..end]) {
            Err(()) => return s.to_vec(),
            Ok(true) => shortest = Some(end),
            Ok(false) => {}
        }
    }
    shortest.map_or_else(|| s.to_vec(), |end| s[end..].to_vec())
}

/// `${V##pat}`: drops the longest prefix matching the glob.
fn trim_longest(s: &[u8], pattern: &[u8]) -> Vec<u8> {
    for end in (1..=s.len()).rev() {
        match glob_match(pattern, &s[..end]) {
            Err(()) => return s.to_vec(),
            Ok(true) => return s[end..].to_vec(),
            Ok(false) => {}
        }
    }
    s.to_vec()
}

/// drone's fork of Go's `path.Match`, where `*` also matches `/`. `Err` means a malformed pattern.
fn glob_match(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, ()> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(true);
        }
        let (t, ok, err) = match_chunk(chunk, name);
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if err {
            return Err(());
        }
        if star {
            for i in 0..name.len() {
                let (t, ok, err) = match_chunk(chunk, &name[i + 1..]);
                if ok {
                    if pattern.is_empty() && !t.is_empty() {
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
                if err {
                    return Err(());
                }
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while pattern.first() == Some(&b'*') {
        pattern = &pattern[1..];
        star = true;
    }
    let (mut in_range, mut i) = (false, 0);
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Returns (rest of `s`, matched, malformed pattern).
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> (&'a [u8], bool, bool) {
    while !chunk.is_empty() {
        if s.is_empty() {
            return (&[], false, false);
        }
        match chunk[0] {
            b'[' => {
                let (r, n) = decode_rune(s);
                s = &s[n..];
                chunk = &chunk[1..];
                let mut negated = false;
                if chunk.first() == Some(&b'^') {
                    negated = true;
                    chunk = &chunk[1..];
                }
                let (mut matched, mut ranges) = (false, 0);
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let Ok((lo, rest)) = get_esc(chunk) else {
                        return (&[], false, true);
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let Ok((h, rest)) = get_esc(&chunk[1..]) else {
                            return (&[], false, true);
                        };
                        hi = h;
                        chunk = rest;
                    }
                    matched |= lo <= r && r <= hi;
                    ranges += 1;
                }
                if matched == negated {
                    return (&[], false, false);
                }
            }
            b'?' => {
                let (_, n) = decode_rune(s);
                s = &s[n..];
                chunk = &chunk[1..];
            }
            c => {
                if c == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return (&[], false, true);
                    }
                }
                if chunk[0] != s[0] {
                    return (&[], false, false);
                }
                s = &s[1..];
                chunk = &chunk[1..];
            }
        }
    }
    (s, true, false)
}

fn get_esc(mut chunk: &[u8]) -> Result<(char, &[u8]), ()> {
    if chunk.is_empty() || chunk[0] == b'-' || chunk[0] == b']' {
        return Err(());
    }
    if chunk[0] == b'\\' {
        chunk = &chunk[1..];
        if chunk.is_empty() {
            return Err(());
        }
    }
    let (r, n) = decode_rune(chunk);
    let rest = &chunk[n..];
    if (r == '\u{FFFD}' && n == 1) || rest.is_empty() {
        return Err(());
    }
    Ok((r, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_match_follows_drone_path_match() {
        let cases: &[(&str, &str, Result<bool, ()>)] = &[
            ("*", "a/b", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*c", "abc", Ok(true)),
            ("a?c", "abc", Ok(true)),
            ("[a-c]x", "bx", Ok(true)),
            ("[^a-c]x", "bx", Ok(false)),
            ("\\*", "*", Ok(true)),
            ("[", "a", Err(())),
            ("a\\", "a", Ok(false)),
            ("a\\", "ab", Err(())),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), name.as_bytes()),
                *want,
                "{pattern} {name}"
            );
        }
    }
}
