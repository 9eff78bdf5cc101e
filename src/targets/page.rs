//! `/targets` as an HTML page, for a browser (Promtail serves one at the same path): one table row per
//! target, grouped by kind. Everything that comes from outside (paths, labels, container names, error
//! messages) is escaped: labels hold whatever the relabel rules and the log data put there.

use std::fmt::Write;

use super::TargetView;

/// The page for `targets` (a [`super::Targets::snapshot`]).
pub fn render(targets: &[TargetView]) -> String {
    let mut html = String::with_capacity(1024 + targets.len() * 512);
    html.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>logferry targets</title>\n<style>\n\
         body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;width:100%}\n\
         th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}\n\
         th{background:#eee}td.num{text-align:right}code{font-size:.9em}\n\
         .reading{color:#06c}.waiting{color:#080}.stopped{color:#666}.error{color:#c00}\n\
         </style>\n</head>\n<body>\n<h1>Targets</h1>\n",
    );
    let _ = writeln!(
        html,
        "<p>{} targets. Also as JSON: <a href=\"?format=json\">?format=json</a>.</p>",
        targets.len()
    );
    html.push_str(
        "<table>\n<thead><tr><th>Kind</th><th>Job</th><th>Target</th><th>Labels</th><th>State</th>\
         <th>Read</th><th>Position</th><th>Lag</th></tr></thead>\n<tbody>\n",
    );
    for t in targets {
        row(&mut html, t);
    }
    html.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    html
}

fn row(html: &mut String, t: &TargetView) {
    let state = t.state.as_str();
    let mut state_cell = format!("<span class=\"{state}\">{state}</span>");
    if let Some(e) = &t.error {
        let _ = write!(state_cell, "<br>{}", escape(e));
    }
    let read = match (t.read_bytes, t.read_entries) {
        (Some(b), Some(e)) => format!("{e} entries, {b} bytes"),
        (Some(b), None) => format!("{b} bytes"),
        (None, Some(e)) => format!("{e} entries"),
        (None, None) => String::new(),
    };
    let lag = match (t.lag_bytes, t.lag_seconds) {
        (Some(b), _) => format!("{b} bytes"),
        (None, Some(s)) => format!("{s:.3} s"),
        (None, None) => String::new(),
    };
    let labels = t
        .labels
        .iter()
        .map(|(k, v)| format!("{}=&quot;{}&quot;", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        html,
        "<tr><td>{kind}</td><td>{job}</td><td><code>{name}</code></td><td><code>{{{labels}}}</code></td>\
         <td>{state_cell}</td><td class=\"num\">{read}</td><td><code>{position}</code></td>\
         <td class=\"num\">{lag}</td></tr>",
        kind = t.kind,
        job = escape(&t.job),
        name = escape(&t.name),
        position = escape(&t.position),
    );
}

/// Text made safe for HTML element content and quoted attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::State;
    use std::collections::BTreeMap;

    #[test]
    fn what_comes_from_outside_is_escaped() {
        let view = TargetView {
            kind: "container",
            job: "docker".into(),
            name: "<script>alert(1)</script>".into(),
            labels: BTreeMap::from([("app".to_owned(), "a<b & \"c\"".to_owned())]),
            state: State::Error,
            error: Some("cannot read </td>".into()),
            position: String::new(),
            read_bytes: Some(5),
            read_entries: Some(1),
            path: None,
            file_size: None,
            lag_bytes: None,
            lag_seconds: Some(0.25),
            container_id: Some("abc".into()),
            connections: None,
        };
        let html = render(&[view]);
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("app=&quot;a&lt;b &amp; &quot;c&quot;&quot;"),
            "{html}"
        );
        assert!(html.contains("cannot read &lt;/td&gt;"), "{html}");
        assert!(html.contains("1 entries, 5 bytes"), "{html}");
        assert!(html.contains("0.250 s"), "{html}");
        assert_eq!(
            html.matches("<tr>").count(),
            2,
            "header and one row: {html}"
        );
    }
}
