//! The `template` stage: Promtail's `template_test.go` cases and docs examples.

use serde_json::{json, Value};

use crate::stage::transforming::{build_error, run};

/// Run a template stage with `source` and `template` on `extracted`; the extracted map after.
fn run_template(source: &str, template: &str, extracted: Value) -> Value {
    let yaml = format!(
        "- template:\n    source: {}\n    template: {}",
        serde_json::to_string(source).unwrap(),
        serde_json::to_string(template).unwrap()
    );
    let out = run(&yaml, "not important for this test", &[], extracted);
    Value::Object(out[0].extracted.clone().into_iter().collect())
}

#[test]
fn template_stage_process() {
    // (source, template, extracted, expected extracted) from template_test.go.
    let cases = [
        (
            "some",
            "{{ .Value }} appended",
            json!({"some": "value"}),
            json!({"some": "value appended"}),
        ),
        (
            "missing",
            "newval",
            json!({"notmissing": "value"}),
            json!({"notmissing": "value", "missing": "newval"}),
        ),
        (
            "message",
            "{{.Value}} in module {{.module}}",
            json!({"level": "warn", "app": "loki", "message": "warn for app loki", "module": "test"}),
            json!({"level": "warn", "app": "loki", "module": "test",
                   "message": "warn for app loki in module test"}),
        ),
        (
            "missing",
            "{{ .level }} for app {{ .app | ToUpper }}",
            json!({"level": "warn", "app": "loki"}),
            json!({"level": "warn", "app": "loki", "missing": "warn for app LOKI"}),
        ),
        (
            "message",
            "{{.Value}} in module {{.module}}",
            json!({"level": "warn", "app": "loki", "message": "warn for app loki"}),
            json!({"level": "warn", "app": "loki",
                   "message": "warn for app loki in module <no value>"}),
        ),
        (
            "level",
            r#"{{ Replace .Value "Warning" "warn" 1 }}"#,
            json!({"level": "Warning", "testval": null}),
            json!({"level": "warn", "testval": null}),
        ),
        (
            "testval",
            "{{ .Value | ToLower }}",
            json!({"testval": "Value"}),
            json!({"testval": "value"}),
        ),
        (
            "testval",
            "{{ add 7 3 }}",
            json!({"testval": "Value"}),
            json!({"testval": "10"}),
        ),
        (
            "testval",
            "{{ ToLower .Value }}",
            json!({"testval": "Value"}),
            json!({"testval": "value"}),
        ),
        // A missing source given to ToLower is an execution error: nothing changes.
        ("testval", "{{ .Value | ToLower }}", json!({}), json!({})),
        (
            "testval",
            r#"{{ Replace .Value " " "_" -1 | ToLower }}"#,
            json!({"testval": "Some Silly Value With Lots Of Spaces"}),
            json!({"testval": "some_silly_value_with_lots_of_spaces"}),
        ),
        (
            "testval",
            r#"{{ regexReplaceAll "(Silly)" .Value "${1}foo"  }}"#,
            json!({"testval": "Some Silly Value With Lots Of Spaces"}),
            json!({"testval": "Some Sillyfoo Value With Lots Of Spaces"}),
        ),
        // A bad regex is an execution error: nothing changes.
        (
            "testval",
            r#"{{ regexReplaceAll "\\K" .Value "${1}foo"  }}"#,
            json!({"testval": "Some Silly Value With Lots Of Spaces"}),
            json!({"testval": "Some Silly Value With Lots Of Spaces"}),
        ),
        (
            "testval",
            r#"{{ regexReplaceAll "( |Of)" .Value "_"  }}"#,
            json!({"testval": "Some Silly Value With Lots Of Spaces"}),
            json!({"testval": "Some_Silly_Value_With_Lots___Spaces"}),
        ),
        (
            "testval",
            r#"{{ Trim .Value "!" }}"#,
            json!({"testval": "!!!!!WOOOOO!!!!!"}),
            json!({"testval": "WOOOOO"}),
        ),
        // An empty result removes the key (or does not add it).
        ("testval", "", json!({"testval": "WOOOOO"}), json!({})),
        ("testval", "", json!({}), json!({})),
        (
            "testval",
            r#"{{ Sha2Hash .Value "salt" }}"#,
            json!({"testval": "this is PII data"}),
            json!({"testval": "5526fd6f8ad457279cf8ff06453c6cb61bf479fa826e3b099caa6c846f9376f2"}),
        ),
        (
            "testval",
            r#"{{ Hash .Value "salt" }}"#,
            json!({"testval": "this is PII data"}),
            json!({"testval": "0807ea24e992127128b38e4930f7155013786a4999c73a25910318a793847658"}),
        ),
        // Non-string values are converted with getString for `.Value` and the other keys.
        (
            "n",
            "{{ .Value }}/{{ .flag }}/{{ .nothing }}",
            json!({"n": 12.5, "flag": true, "nothing": null}),
            json!({"n": "12.5/true/<no value>", "flag": true, "nothing": null}),
        ),
        // `.Entry` is the line.
        (
            "copy",
            "{{ .Entry }}",
            json!({}),
            json!({"copy": "not important for this test"}),
        ),
    ];
    for (source, template, extracted, want) in cases {
        let got = run_template(source, template, extracted.clone());
        assert_eq!(got, want, "{template} on {extracted}");
    }
}

#[test]
fn hash_argument_order() {
    use sha3::Digest as _;
    // Promtail docs: `{{ .Value | Hash "salt" }}` hashes "salt" + value.
    let got = run_template(
        "h",
        r#"{{ .Value | Hash "salt" }}"#,
        json!({"h": "this is PII data"}),
    );
    let want = crate::stage::transforming::template::funcs::hex(&sha3::Sha3_256::digest(
        "saltthis is PII data",
    ));
    assert_eq!(got, json!({ "h": want }));
    assert_ne!(
        want,
        "0807ea24e992127128b38e4930f7155013786a4999c73a25910318a793847658"
    );
}

#[test]
fn template_pipeline_from_promtail_test() {
    // testTemplateYaml: json, three templates, labels (the json stage's output is given directly).
    let yaml = r#"
- template:
    source: app
    template: '{{ .Value | ToUpper }} doki'
- template:
    source: level
    template: '{{ if eq .Value "WARN" }}{{ Replace .Value "WARN" "OK" -1 }}{{ else }}{{ .Value }}{{ end }}'
- template:
    source: nonexistent
    template: "TEST"
- labels:
    app: ''
    level: ''
    type: nonexistent
"#;
    let out = run(yaml, "{}", &[], json!({"app": "loki", "level": "WARN"}));
    let labels: Vec<(&str, &str)> = out[0]
        .labels
        .map()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        vec![("app", "LOKI doki"), ("level", "OK"), ("type", "TEST")]
    );
}

#[test]
fn template_config_errors() {
    assert!(build_error("- template: {template: x}").contains("template source value is required"));
    assert!(build_error("- template:").contains("template source value is required"));
    let err = build_error("- template: {source: a, template: '{{ nosuch .Value }}'}");
    assert!(err.contains(r#"function "nosuch" not defined"#), "{err}");
    let err = build_error("- template: {source: a, template: '{{ if .Value }}x'}");
    assert!(err.contains("unexpected EOF"), "{err}");
    let err = build_error("- template: {source: a, template: '{{ .Value '}");
    assert!(err.contains("unclosed action"), "{err}");
}
