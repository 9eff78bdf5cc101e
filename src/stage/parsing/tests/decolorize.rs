//! `decolorize`: ANSI sequences removed, other text untouched.

use super::*;

#[test]
fn decolorize_table() {
    let cases = [
        ("\u{1b}[31mERROR\u{1b}[0m failed", "ERROR failed"),
        ("\u{1b}[1;32mOK\u{1b}[0m", "OK"),
        ("\u{1b}[38;5;196mred\u{1b}[39m", "red"),
        ("\u{9b}31mCSI\u{9b}0m", "CSI"),
        ("\u{1b}]0;title\u{7}text", "text"),
        ("\u{1b}[2K\u{1b}[1Gprogress", "progress"),
        ("no colors [31m here", "no colors [31m here"),
        ("héllo \u{c2}\u{a0}nbsp", "héllo \u{c2}\u{a0}nbsp"),
        ("", ""),
    ];
    for (input, want) in cases {
        let out = run_one("- decolorize:", input, &[("job", "x")]);
        assert_eq!(out[0].line, want, "{input:?}");
        assert_eq!(labels_of(&out[0]), labels(&[("job", "x")]));
    }
}
