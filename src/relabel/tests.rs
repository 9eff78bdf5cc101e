use super::*;
use crate::goregex;

/// The docs promise a `Relabeler` can be shared between tasks.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Relabeler>();
};

type Pairs = &'static [(&'static str, &'static str)];

/// One table row: rules as `relabel_configs` YAML, input labels, and the labels expected after
/// relabeling (`None`: dropped).
struct Case {
    name: &'static str,
    rules: &'static str,
    input: Pairs,
    want: Option<Pairs>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn parse(yaml: &str) -> Vec<RelabelConfig> {
    serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn relabel(yaml: &str, input: &[(&str, &str)]) -> Option<Labels> {
    let relabeler = Relabeler::new(&parse(yaml)).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    let mut out = labels(input);
    relabeler.process(&mut out).then_some(out)
}

fn check(cases: &[Case]) {
    for case in cases {
        let got = relabel(case.rules, case.input);
        assert_eq!(got, case.want.map(labels), "case {:?}", case.name);
    }
}

#[test]
fn replace() {
    check(&[
        Case {
            name: "braced group references",
            rules: "[{source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch${1}-ch${1}'}]",
            input: &[("a", "foo"), ("b", "bar")],
            want: Some(&[("a", "foo"), ("b", "bar"), ("d", "choo-choo")]),
        },
        Case {
            name: "joined sources, a rule reads what the previous one wrote",
            rules: "[{source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'},
                     {source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, replacement: '$1$2$2$3'}]",
            input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
            want: Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
        },
        Case {
            name: "all defaults copy the source",
            rules: "[{source_labels: [a], target_label: b}]",
            input: &[("a", "foo")],
            want: Some(&[("a", "foo"), ("b", "foo")]),
        },
        Case {
            name: "the regex must match the whole value",
            rules: "[{source_labels: [a], regex: 'o', target_label: b, replacement: x}]",
            input: &[("a", "foo")],
            want: Some(&[("a", "foo")]),
        },
        Case {
            name: "no match leaves an existing target alone",
            rules: "[{source_labels: [a], regex: 'f', target_label: b, replacement: bar}]",
            input: &[("a", "boo"), ("b", "keep")],
            want: Some(&[("a", "boo"), ("b", "keep")]),
        },
        Case {
            name: "a group in the middle",
            rules: "[{source_labels: [a], regex: '.*(b).*', target_label: d}]",
            input: &[("a", "abc")],
            want: Some(&[("a", "abc"), ("d", "b")]),
        },
        Case {
            name: "an empty result deletes the target",
            rules: "[{source_labels: [a], regex: '(x)(y?)', target_label: t, replacement: '$2'}]",
            input: &[("a", "x"), ("t", "old")],
            want: Some(&[("a", "x")]),
        },
        Case {
            name: "target label built from groups",
            rules: "[{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${1}', replacement: '${2}'}]",
            input: &[("a", "some-name-value")],
            want: Some(&[("a", "some-name-value"), ("name", "value")]),
        },
        Case {
            name: "a target that expands to nothing is a no-op; an empty value deletes",
            rules: "[{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${3}', replacement: '${1}'},
                     {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${1}', replacement: '${3}'}]",
            input: &[("a", "some-name-value"), ("name", "stays")],
            want: Some(&[("a", "some-name-value")]),
        },
        Case {
            name: "UTF-8 label names are valid targets",
            rules: "[{source_labels: [a], target_label: service.name},
                     {source_labels: [b], regex: '(.+)=(.*)', target_label: '$1', replacement: '$2'}]",
            input: &[("a", "api"), ("b", "k8s.pod=web-1")],
            want: Some(&[("a", "api"), ("b", "k8s.pod=web-1"), ("k8s.pod", "web-1"), ("service.name", "api")]),
        },
        Case {
            name: "dot matches a newline",
            rules: "[{source_labels: [a], regex: 'foo(.)bar', target_label: b, replacement: '[$1]'}]",
            input: &[("a", "foo\nbar")],
            want: Some(&[("a", "foo\nbar"), ("b", "[\n]")]),
        },
        Case {
            name: "missing sources join to bare separators",
            rules: "[{source_labels: [x, y, z], target_label: j, replacement: '[$1]'}]",
            input: &[],
            want: Some(&[("j", "[;;]")]),
        },
        Case {
            name: "custom separator",
            rules: "[{source_labels: [ns, app], separator: /, target_label: job}]",
            input: &[("app", "api"), ("ns", "prod")],
            want: Some(&[("app", "api"), ("job", "prod/api"), ("ns", "prod")]),
        },
        Case {
            name: "a null separator joins with nothing",
            rules: "[{source_labels: [ns, app], separator: null, target_label: job}]",
            input: &[("app", "api"), ("ns", "prod")],
            want: Some(&[("app", "api"), ("job", "prodapi"), ("ns", "prod")]),
        },
        Case {
            name: "named groups",
            rules: r"[{source_labels: [addr], regex: '(?P<host>[^:]+):(?P<port>\d+)', target_label: port, replacement: '${port}'},
                      {source_labels: [addr], regex: '(?P<host>[^:]+):(?P<port>\d+)', target_label: host, replacement: '$host'}]",
            input: &[("addr", "web:8080")],
            want: Some(&[("addr", "web:8080"), ("host", "web"), ("port", "8080")]),
        },
        Case {
            name: "$1x names the group 1x and expands to nothing; ${1}x does not",
            rules: "[{source_labels: [a], regex: '(f)oo', target_label: plain, replacement: '$1x'},
                     {source_labels: [a], regex: '(f)oo', target_label: braced, replacement: '${1}x'}]",
            input: &[("a", "foo"), ("plain", "old")],
            want: Some(&[("a", "foo"), ("braced", "fx")]),
        },
        Case {
            name: "a real-life tag parser",
            rules: "[{source_labels: [__meta_sd_tags], regex: '(?:.+,|^)path:(/[^,]+).*', target_label: __metrics_path__},
                     {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)job:([^,]+).*', target_label: job},
                     {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', target_label: '${1}', replacement: '${2}'}]",
            input: &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
            want: Some(&[
                ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
                ("__metrics_path__", "/secret"),
                ("foo", "bar"),
                ("job", "some-job"),
            ]),
        },
    ]);
}

#[test]
fn replace_special_case() {
    check(&[
        Case {
            name: "a static value without sources",
            rules: "[{target_label: env, replacement: prod}]",
            input: &[],
            want: Some(&[("env", "prod")]),
        },
        Case {
            name: "a missing source is an empty value too",
            rules: "[{source_labels: [nope], target_label: env, replacement: prod}]",
            input: &[("env", "dev")],
            want: Some(&[("env", "prod")]),
        },
        Case {
            name: "an empty replacement deletes",
            rules: "[{target_label: env, replacement: ''}]",
            input: &[("env", "dev")],
            want: Some(&[]),
        },
        Case {
            name: "the default replacement $1 of an empty value deletes",
            rules: "[{target_label: env}]",
            input: &[("env", "dev")],
            want: Some(&[]),
        },
        Case {
            name: "a $ in the replacement takes the regular path",
            rules: "[{target_label: env, replacement: 'x$1'}]",
            input: &[],
            want: Some(&[("env", "x")]),
        },
        Case {
            name: "a non-default regex must match the empty value",
            rules: "[{source_labels: [nope], regex: '(.+)', target_label: env, replacement: prod}]",
            input: &[],
            want: Some(&[]),
        },
        Case {
            name: "(.*) written out behaves the same",
            rules: "[{regex: '(.*)', target_label: env, replacement: prod}]",
            input: &[],
            want: Some(&[("env", "prod")]),
        },
        Case {
            name: "the empty pattern matches only the empty value",
            rules: "[{regex: '', target_label: env, replacement: prod},
                     {source_labels: [a], regex: '', target_label: other, replacement: x}]",
            input: &[("a", "v")],
            want: Some(&[("a", "v"), ("env", "prod")]),
        },
    ]);
}

#[test]
fn keep_and_drop() {
    check(&[
        Case {
            name: "drop on match stops processing",
            rules: "[{source_labels: [a], regex: '.*o.*', action: drop}, {source_labels: [a], target_label: d}]",
            input: &[("a", "foo")],
            want: None,
        },
        Case {
            name: "drop needs a whole-value match",
            rules: "[{source_labels: [a], regex: 'f|o', action: drop}]",
            input: &[("a", "foo")],
            want: Some(&[("a", "foo")]),
        },
        Case {
            name: "keep without a match drops",
            rules: "[{source_labels: [a], regex: no-match, action: keep}]",
            input: &[("a", "foo")],
            want: None,
        },
        Case {
            name: "keep with a match keeps",
            rules: "[{source_labels: [a], regex: 'f.*', action: keep}]",
            input: &[("a", "foo")],
            want: Some(&[("a", "foo")]),
        },
        Case {
            name: "a missing label is the empty value",
            rules: "[{source_labels: [x], regex: '', action: keep}, {source_labels: [x], regex: '.+', action: drop}]",
            input: &[("a", "foo")],
            want: Some(&[("a", "foo")]),
        },
        Case {
            name: "a null regex is the empty pattern",
            rules: "[{source_labels: [a], regex: null, action: keep}]",
            input: &[("a", "foo")],
            want: None,
        },
        Case {
            name: "multiline values match with .",
            rules: "[{source_labels: [a], regex: 'foo.*', action: drop}]",
            input: &[("a", "foo\nbar")],
            want: None,
        },
        Case {
            name: "later rules see earlier changes (prometheus#12283)",
            rules: "[{regex: '^__meta_kubernetes_pod_container_port_name$', action: labeldrop},
                     {source_labels: [__meta_kubernetes_pod_annotation_XXX_metrics_port], regex: '(.+)',
                      target_label: __meta_kubernetes_pod_container_port_name, replacement: metrics},
                     {source_labels: [__meta_kubernetes_pod_container_port_name], regex: '^metrics$', action: keep}]",
            input: &[
                ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
                ("__meta_kubernetes_pod_container_port_name", "foo"),
            ],
            want: Some(&[
                ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
                ("__meta_kubernetes_pod_container_port_name", "metrics"),
            ]),
        },
    ]);
}

#[test]
fn keepequal_and_dropequal() {
    const PORTS: Pairs = &[
        ("__port1", "1234"),
        ("__port2", "5678"),
        ("__tmp_port", "1234"),
    ];
    check(&[
        Case {
            name: "keepequal, equal",
            rules: "[{source_labels: [__tmp_port], target_label: __port1, action: keepequal}]",
            input: PORTS,
            want: Some(PORTS),
        },
        Case {
            name: "keepequal, different",
            rules: "[{source_labels: [__tmp_port], target_label: __port2, action: keepequal}]",
            input: PORTS,
            want: None,
        },
        Case {
            name: "dropequal, equal",
            rules: "[{source_labels: [__tmp_port], target_label: __port1, action: DropEqual}]",
            input: PORTS,
            want: None,
        },
        Case {
            name: "dropequal, different",
            rules: "[{source_labels: [__tmp_port], target_label: __port2, action: dropequal}]",
            input: PORTS,
            want: Some(PORTS),
        },
        Case {
            name: "two missing labels are equal",
            rules: "[{source_labels: [x], target_label: y, action: keepequal}]",
            input: &[],
            want: Some(&[]),
        },
        Case {
            name: "the compared value is the joined sources",
            rules: "[{source_labels: [a, b], target_label: c, action: keepequal}]",
            input: &[("a", "1"), ("b", "2"), ("c", "1;2")],
            want: Some(&[("a", "1"), ("b", "2"), ("c", "1;2")]),
        },
    ]);
}

#[test]
fn hashmod_matches_prometheus_values() {
    check(&[
        Case {
            name: "prometheus test value",
            rules: "[{source_labels: [c], target_label: d, action: hashmod, modulus: 1000}]",
            input: &[("c", "baz")],
            want: Some(&[("c", "baz"), ("d", "976")]),
        },
        Case {
            name: "prometheus test value with a newline",
            rules: "[{source_labels: [a], target_label: b, action: hashmod, modulus: 1000}]",
            input: &[("a", "foo\nbar")],
            want: Some(&[("a", "foo\nbar"), ("b", "734")]),
        },
        Case {
            name: "the empty value hashes too",
            rules: "[{source_labels: [missing], target_label: h, action: hashmod, modulus: 1000}]",
            input: &[],
            want: Some(&[("h", "958")]),
        },
        Case {
            name: "sharding by address",
            rules: "[{source_labels: [__address__], target_label: __tmp_hash, action: hashmod, modulus: 3}]",
            input: &[("__address__", "10.132.183.40:80")],
            want: Some(&[("__address__", "10.132.183.40:80"), ("__tmp_hash", "1")]),
        },
        Case {
            name: "the full 64 bits",
            rules: "[{source_labels: [a], target_label: h, action: hashmod, modulus: 18446744073709551615}]",
            input: &[("a", "foo")],
            want: Some(&[("a", "foo"), ("h", "17145033699835028696")]),
        },
    ]);
}

#[test]
fn labelmap() {
    check(&[
        Case {
            name: "meta labels are copied, originals kept",
            rules: "[{regex: '__meta_(.+)', action: labelmap}]",
            input: &[("__meta_kubernetes_pod", "p"), ("__meta_x", "y"), ("a", "b")],
            want: Some(&[
                ("__meta_kubernetes_pod", "p"),
                ("__meta_x", "y"),
                ("a", "b"),
                ("kubernetes_pod", "p"),
                ("x", "y"),
            ]),
        },
        Case {
            name: "replacement with a prefix",
            rules: "[{regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}]",
            input: &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            want: Some(&[("a", "foo"), ("b1", "bar"), ("b2", "baz"), ("bar_b1", "bar"), ("bar_b2", "baz")]),
        },
        Case {
            name: "only matching names",
            rules: "[{regex: '__meta_(my.*)', replacement: '${1}', action: labelmap}]",
            input: &[("__meta_my_bar", "aaa"), ("__meta_other", "ccc")],
            want: Some(&[("__meta_my_bar", "aaa"), ("__meta_other", "ccc"), ("my_bar", "aaa")]),
        },
        Case {
            name: "docker container labels",
            rules: "[{regex: '__meta_docker_container_label_com_docker_compose_(.+)', replacement: 'compose_$1', action: labelmap}]",
            input: &[("__meta_docker_container_label_com_docker_compose_service", "web")],
            want: Some(&[
                ("__meta_docker_container_label_com_docker_compose_service", "web"),
                ("compose_service", "web"),
            ]),
        },
        Case {
            name: "several names mapping to one: the last in name order wins, and it overwrites",
            rules: "[{regex: '(a|b)_x', replacement: y, action: labelmap}]",
            input: &[("a_x", "1"), ("b_x", "2"), ("y", "0")],
            want: Some(&[("a_x", "1"), ("b_x", "2"), ("y", "2")]),
        },
    ]);
}

#[test]
fn labeldrop_and_labelkeep() {
    check(&[
        Case {
            name: "labeldrop",
            rules: "[{regex: '(b.*)', action: labeldrop}]",
            input: &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            want: Some(&[("a", "foo")]),
        },
        Case {
            name: "labelkeep",
            rules: "[{regex: '(b.*)', action: labelkeep}]",
            input: &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            want: Some(&[("b1", "bar"), ("b2", "baz")]),
        },
        Case {
            name: "labeldrop needs a whole-name match",
            rules: "[{regex: 'tmp', action: labeldrop}]",
            input: &[("__tmp", "1"), ("tmp", "2")],
            want: Some(&[("__tmp", "1")]),
        },
        Case {
            name: "labelkeep of nothing keeps an empty set",
            rules: "[{regex: 'nothing', action: labelkeep}]",
            input: &[("a", "foo")],
            want: Some(&[]),
        },
    ]);
}

#[test]
fn lowercase_and_uppercase() {
    check(&[
        Case {
            name: "both, from one source",
            rules: "[{source_labels: [foo], target_label: foo_uppercase, action: uppercase},
                     {source_labels: [foo], target_label: foo_lowercase, action: lowercase}]",
            input: &[("foo", "bAr123Foo")],
            want: Some(&[
                ("foo", "bAr123Foo"),
                ("foo_lowercase", "bar123foo"),
                ("foo_uppercase", "BAR123FOO"),
            ]),
        },
        Case {
            name: "lowercase of joined sources",
            rules: "[{source_labels: [a, b], separator: '-', target_label: t, action: lowercase}]",
            input: &[("a", "FoO"), ("b", "BAR")],
            want: Some(&[("a", "FoO"), ("b", "BAR"), ("t", "foo-bar")]),
        },
        Case {
            name: "an empty value deletes the target",
            rules: "[{source_labels: [missing], target_label: t, action: uppercase}]",
            input: &[("t", "old")],
            want: Some(&[]),
        },
        Case {
            name: "Go's simple case mapping, not Rust's full one",
            rules: "[{source_labels: [a], target_label: upper, action: uppercase},
                     {source_labels: [b], target_label: lower, action: lowercase}]",
            input: &[("a", "straße ᾳ"), ("b", "ΟΔΟΣ İ")],
            want: Some(&[
                ("a", "straße ᾳ"),
                ("b", "ΟΔΟΣ İ"),
                ("lower", "\u{3bf}\u{3b4}\u{3bf}\u{3c3} i"),
                ("upper", "STRAßE \u{1fbc}"),
            ]),
        },
    ]);
}

#[test]
fn action_names_are_case_insensitive() {
    check(&[Case {
        name: "mixed case",
        rules: "[{regex: 'x', action: LabelDrop}, {source_labels: [a], regex: 'f.*', action: KEEP},
                 {source_labels: [a], target_label: b, action: Replace}]",
        input: &[("a", "foo"), ("x", "1")],
        want: Some(&[("a", "foo"), ("b", "foo")]),
    }]);
    // Go lowercases with Unicode rules: the Kelvin sign becomes 'k'.
    assert_eq!(Action::parse("\u{212a}EEP"), Some(Action::Keep));
}

/// Go `Regexp.Expand` semantics, checked piece by piece.
#[test]
fn templates_expand_like_go() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("(f)(o+)", "foo", "$1", "f"),
        ("(f)(o+)", "foo", "${1}", "f"),
        ("(f)(o+)", "foo", "$2$1", "oof"),
        ("(f)(o+)", "foo", "$0", "foo"),
        ("(f)(o+)", "foo", "$1.$2", "f.oo"),
        ("(f)(o+)", "foo", "$1x", ""),
        ("(f)(o+)", "foo", "${1}x", "fx"),
        ("(f)(o+)", "foo", "$3", ""),
        ("(f)(o+)", "foo", "$01", ""),
        ("(f)(o+)", "foo", "$999999999", ""),
        ("(f)(o+)", "foo", "$1234567890", ""),
        ("(f)(o+)", "foo", "$$", "$"),
        ("(f)(o+)", "foo", "$$1", "$1"),
        ("(f)(o+)", "foo", "$", "$"),
        ("(f)(o+)", "foo", "a$", "a$"),
        ("(f)(o+)", "foo", "${", "${"),
        ("(f)(o+)", "foo", "${}", "${}"),
        ("(f)(o+)", "foo", "${1", "${1"),
        ("(f)(o+)", "foo", "${a-b}", "${a-b}"),
        ("(f)(o+)", "foo", "$-1", "$-1"),
        ("(f)(o+)", "foo", "$1é", ""),
        ("(f)(o+)", "foo", "${1}é", "fé"),
        ("(f)(o+)", "foo", "no refs", "no refs"),
        (r"(?P<host>[^:]+):(?P<port>\d+)", "web:80", "$host", "web"),
        (r"(?P<host>[^:]+):(?P<port>\d+)", "web:80", "${port}", "80"),
        (r"(?P<host>[^:]+):(?P<port>\d+)", "web:80", "$host_x", ""),
        (
            r"(?P<host>[^:]+):(?P<port>\d+)",
            "web:80",
            "${host}_x",
            "web_x",
        ),
        (
            r"(?P<host>[^:]+):(?P<port>\d+)",
            "web:80",
            "$2/$nope",
            "80/",
        ),
        ("(a)|(b)", "b", "[$1][$2]", "[][b]"),
    ];
    for &(pattern, input, template, want) in cases {
        let regex = goregex::compile_anchored(pattern).unwrap();
        let caps = regex.captures(input).unwrap();
        let mut got = String::new();
        Template::parse(template, &regex).expand(|i| caps.get(i).map(|m| m.as_str()), &mut got);
        assert_eq!(got, want, "{pattern:?} on {input:?} with {template:?}");
    }
}

/// Why the regex crate's own `Captures::expand` is not used: it reads these templates differently.
#[test]
fn templates_differ_from_regex_crate_expand() {
    let regex = goregex::compile_anchored("(f)(o+)").unwrap();
    let caps = regex.captures("foo").unwrap();
    for (template, go) in [("$01", ""), ("${a-b}", "${a-b}"), ("$1é", "")] {
        let mut ours = String::new();
        Template::parse(template, &regex).expand(|i| caps.get(i).map(|m| m.as_str()), &mut ours);
        let mut crate_expand = String::new();
        caps.expand(template, &mut crate_expand);
        assert_eq!(ours, go, "{template:?}");
        assert_ne!(
            crate_expand, go,
            "{template:?}: the regex crate now agrees with Go"
        );
    }
}

#[test]
fn regexes_follow_go_syntax() {
    let cases: &[(&str, &str, bool)] = &[
        (r"\d+", "123", true),
        (r"\d", "\u{663}", false), // ARABIC-INDIC DIGIT THREE: Unicode \d would match
        (r"\w+", "é", false),
        (r"\W", "é", true),
        (r"\s", "\t", true),
        (r"\s", "\u{b}", false), // Go's \s has no vertical tab
        (r"\s", "\u{a0}", false),
        (r"\S", "\u{a0}", true),
        (r".\bfoo", "éfoo", true), // an ASCII word boundary between 'é' and 'f'
        (r"[^\d]", "x", true),
        (r"[^\d]", "1", false),
        (r"[\d-z]", "-", true),
        (r"[\d-z]", "a", false),
        (r"[+--]", ",", true),
        (r"[[]", "[", true),
        (r"[a&&b]", "&", true),
        (r"[]a]", "]", true),
        (r"[\p{Greek}\d]+", "α1", true),
        (r"[[:alpha:]]+", "abc", true),
        (r"\Q1.5\E", "1.5", true),
        (r"\Q1.5\E", "105", false),
        (r"\Q(a", "(a", true),
        ("a{", "a{", true),
        ("{{.*}}", "{{x}}", true),
        ("a{,2}", "a{,2}", true),
        ("x{01}", "x{01}", true),
        ("a{2}", "aa", true),
        ("a{2,}", "aaa", true),
        (r"\pL+", "日本", true),
        (r"\p{^Greek}", "a", true),
        (r"\p{^Greek}", "α", false),
        (r"\012", "\n", true),
        (r"\x41\x{42}", "AB", true),
        (r"\<\:", "<:", true),
        ("(?i)FOO", "foo", true),
        ("", "", true),
        ("", "a", false),
        ("a|b", "ab", false),
        ("foo.bar", "foo\nbar", true),
        (r"(.+?)(\:\d+)?;(\d+)", "10.0.0.1:80;9090", true),
    ];
    for &(pattern, input, want) in cases {
        let regex =
            goregex::compile_anchored(pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
        assert_eq!(regex.is_match(input), want, "{pattern:?} on {input:?}");
    }
}

fn error_of(yaml: &str) -> String {
    match Relabeler::new(&parse(yaml)) {
        Ok(_) => panic!("{yaml}: accepted"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn invalid_rules_are_refused() {
    let cases: &[(&str, &str)] = &[
        (
            "[{target_label: a}, {target_label: b}, {source_labels: [a], target_label: h, action: hashmod}]",
            r#"relabel_configs[2]: "hashmod" action requires a non-zero modulus"#,
        ),
        (
            "[{target_label: h, action: hashmod, modulus: 0}]",
            r#"relabel_configs[0]: "hashmod" action requires a non-zero modulus"#,
        ),
        (
            "[{action: foo}]",
            r#"relabel_configs[0]: unknown relabel action "foo" in 'action' (expected one of replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase)"#,
        ),
        ("[{action: null, target_label: x}]", r#"relabel_configs[0]: unknown relabel action "" in 'action'"#),
        ("[{regex: '(', target_label: x}]", r#"relabel_configs[0]: invalid 'regex' "(": unclosed group"#),
        ("[{regex: 'a)', action: keep}]", r#"relabel_configs[0]: invalid 'regex' "a)": unopened group"#),
        ("[{source_labels: [a]}]", r#"relabel_configs[0]: "replace" action requires a 'target_label'"#),
        ("[{source_labels: [a], target_label: ''}]", r#"relabel_configs[0]: "replace" action requires a 'target_label'"#),
        ("[{source_labels: [a], action: lowercase}]", r#"relabel_configs[0]: "lowercase" action requires a 'target_label'"#),
        ("[{source_labels: [a], action: uppercase}]", r#"relabel_configs[0]: "uppercase" action requires a 'target_label'"#),
        ("[{action: hashmod, modulus: 2}]", r#"relabel_configs[0]: "hashmod" action requires a 'target_label'"#),
        ("[{source_labels: [a], action: keepequal}]", r#"relabel_configs[0]: "keepequal" action requires a 'target_label'"#),
        ("[{source_labels: [a], action: dropequal}]", r#"relabel_configs[0]: "dropequal" action requires a 'target_label'"#),
        (
            "[{source_labels: [a], target_label: b, action: lowercase, replacement: x}]",
            r#"relabel_configs[0]: 'replacement' can not be set for "lowercase" action"#,
        ),
        (
            "[{source_labels: [a], target_label: b, action: uppercase, replacement: ''}]",
            r#"relabel_configs[0]: 'replacement' can not be set for "uppercase" action"#,
        ),
        (
            "[{source_labels: [a], target_label: b, action: keepequal, replacement: x}]",
            r#"relabel_configs[0]: 'replacement' can not be set for "keepequal" action"#,
        ),
        (
            "[{source_labels: [a], target_label: b, action: keepequal, regex: '(.*)'}]",
            r#"relabel_configs[0]: "keepequal" action allows only 'source_labels' and 'target_label', but 'regex' is set"#,
        ),
        (
            "[{source_labels: [a], target_label: b, action: dropequal, modulus: 3}]",
            r#"relabel_configs[0]: "dropequal" action allows only 'source_labels' and 'target_label', but 'modulus' is set"#,
        ),
        (
            "[{source_labels: [a], target_label: b, action: dropequal, separator: ','}]",
            r#"relabel_configs[0]: "dropequal" action allows only 'source_labels' and 'target_label', but 'separator' is set"#,
        ),
        (
            "[{regex: '(.*)', replacement: '', action: labelmap}]",
            r#"relabel_configs[0]: "" is invalid 'replacement' for "labelmap" action: it must name a label"#,
        ),
        (
            "[{source_labels: [a], regex: x, action: labeldrop}]",
            r#"relabel_configs[0]: "labeldrop" action allows only 'regex', but 'source_labels' is set"#,
        ),
        (
            "[{target_label: a, regex: x, action: labelkeep}]",
            r#"relabel_configs[0]: "labelkeep" action allows only 'regex', but 'target_label' is set"#,
        ),
        ("[{modulus: 2, action: labeldrop}]", r#"relabel_configs[0]: "labeldrop" action allows only 'regex', but 'modulus' is set"#),
        ("[{separator: ',', action: labeldrop}]", r#"relabel_configs[0]: "labeldrop" action allows only 'regex', but 'separator' is set"#),
        ("[{replacement: x, action: labelkeep}]", r#"relabel_configs[0]: "labelkeep" action allows only 'regex', but 'replacement' is set"#),
    ];
    for &(yaml, want) in cases {
        let got = error_of(yaml);
        assert!(got.starts_with(want), "{yaml}\n got: {got}\nwant: {want}");
    }
}

#[test]
fn defaults_written_out_are_accepted() {
    for yaml in [
        "[{source_labels: [a], target_label: b, action: keepequal, separator: ';', replacement: '$1'}]",
        "[{source_labels: [a], target_label: b, action: lowercase, replacement: '$1'}]",
        "[{regex: x, action: labeldrop, separator: ';', replacement: '$1', target_label: '', modulus: 0}]",
        "[{source_labels: [a], action: keep, modulus: 7, target_label: ignored}]",
        "[{source_labels: [a], target_label: '${1}x', regex: '(.*)'}]",
        "[{source_labels: [a], target_label: '${3}', action: lowercase}]",
    ] {
        Relabeler::new(&parse(yaml)).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    }
    let unknown_key =
        serde_yaml_ng::from_str::<Vec<RelabelConfig>>("[{target_label: a, regexp: x}]");
    assert!(unknown_key
        .unwrap_err()
        .to_string()
        .contains("unknown field `regexp`"));
}

#[test]
fn null_values_mean_empty_not_default() {
    let configs = parse("[{source_labels: ~, separator: ~, regex: ~, replacement: ~, target_label: x}, {target_label: y}]");
    assert_eq!(configs[0].source_labels, Vec::<String>::new());
    assert_eq!(configs[0].separator.as_deref(), Some(""));
    assert_eq!(configs[0].regex.as_deref(), Some(""));
    assert_eq!(configs[0].replacement.as_deref(), Some(""));
    assert_eq!(configs[1].regex, None);
    assert_eq!(configs[1].separator, None);
}

#[test]
fn read_label_names() {
    let relabeler = Relabeler::new(&parse(
        "[{source_labels: [b, a], target_label: x},
          {source_labels: [c], target_label: d, action: keepequal},
          {source_labels: [a], target_label: h, action: hashmod, modulus: 4}]",
    ))
    .unwrap();
    assert_eq!(
        relabeler.source_label_names().collect::<Vec<_>>(),
        ["a", "b", "c", "d"]
    );
    assert!(!relabeler.reads_all_labels());
    assert!(!relabeler.is_empty());

    let relabeler = Relabeler::new(&parse(
        "[{source_labels: [ignored], regex: '__meta_(.+)', action: labelmap}]",
    ))
    .unwrap();
    assert!(relabeler.reads_all_labels());
    assert_eq!(relabeler.source_label_names().count(), 0);

    let empty = Relabeler::new(&[]).unwrap();
    assert!(empty.is_empty());
    let mut untouched = labels(&[("a", "1")]);
    assert!(empty.process(&mut untouched));
    assert_eq!(untouched, labels(&[("a", "1")]));
}

#[test]
fn yaml_round_trip() {
    let yaml = r#"
- source_labels: [__meta_docker_container_name]
  regex: '/(.*)'
  target_label: container
- source_labels: ['__meta_docker_container_log_stream']
  target_label: stream
- action: labelmap
  regex: __meta_docker_container_label_com_docker_compose_(.+)
  replacement: compose_${1}
- source_labels: [container, stream]
  separator: '/'
  regex: 'db-.*/stderr'
  action: Drop
- source_labels: [container]
  target_label: shard
  action: hashmod
  modulus: 1000
- target_label: env
  replacement: prod
- regex: __meta_.*
  action: labeldrop
"#;
    let configs = parse(yaml);
    assert_eq!(configs.len(), 7);
    assert_eq!(configs[3].separator.as_deref(), Some("/"));
    assert_eq!(configs[4].modulus, Some(1000));
    let written = serde_yaml_ng::to_string(&configs).unwrap();
    assert_eq!(parse(&written), configs, "{written}");

    let relabeler = Relabeler::new(&configs).unwrap();
    let mut web = labels(&[
        (
            "__meta_docker_container_label_com_docker_compose_service",
            "web",
        ),
        ("__meta_docker_container_log_stream", "stdout"),
        ("__meta_docker_container_name", "/baz"),
    ]);
    assert!(relabeler.process(&mut web));
    let want = labels(&[
        ("compose_service", "web"),
        ("container", "baz"),
        ("env", "prod"),
        ("shard", "976"),
        ("stream", "stdout"),
    ]);
    assert_eq!(web, want);

    let mut db = labels(&[
        ("__meta_docker_container_log_stream", "stderr"),
        ("__meta_docker_container_name", "/db-1"),
    ]);
    assert!(!relabeler.process(&mut db));
}
