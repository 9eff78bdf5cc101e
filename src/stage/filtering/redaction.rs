//! `configs/redaction.yaml`'s pipeline masks every kind of secret it promises to, on realistic lines
//! (issue 4 point 5). It uses `replace` (transforming family) and `luhn`.

use crate::stage::testing::{entry, pipeline};

const CONFIG: &str = include_str!("../../../configs/redaction.yaml");

/// The first scrape config's `pipeline_stages`, as YAML.
fn stages_yaml() -> String {
    let config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(CONFIG).expect("redaction.yaml parses");
    let stages = &config["scrape_configs"][0]["pipeline_stages"];
    assert!(stages.is_sequence(), "redaction.yaml has pipeline_stages");
    serde_yaml_ng::to_string(stages).unwrap()
}

#[test]
fn redaction_config_masks_secrets() {
    let mut p = pipeline(&stages_yaml()).unwrap_or_else(|e| panic!("redaction.yaml: {e}"));
    // (input line, secrets that must be gone, text that must be kept)
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            r#"level=info msg="password reset sent" to=alice.smith+news@example.co.uk from=noreply@mail.example.com"#,
            &["alice.smith", "example.co.uk", "noreply@"],
            &["level=info", "msg=\"password reset sent\"", "to=****@****"],
        ),
        (
            r#"10.0.0.7 - - [12/Mar/2024:10:01:02 +0000] "GET /api/v1/users?page=2 HTTP/1.1" 200 512 "-" "curl/8.4" "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk""#,
            &["eyJhbGciOiJIUzI1NiJ9", "dBjftJeZ4CVP"],
            &[
                "Authorization: Bearer ****",
                "GET /api/v1/users?page=2",
                "200 512",
            ],
        ),
        (
            "GET /login?user=bob&password=hunter2&next=/home HTTP/1.1",
            &["hunter2"],
            &["user=bob", "password=****", "next=/home"],
        ),
        (
            r#"POST /oauth/callback?code=abc&access_token=ya29.a0AfH6SMB&state=xyz 302 "Token=S3cr3t;""#,
            &["ya29.a0AfH6SMB", "S3cr3t"],
            &["code=abc", "access_token=****", "state=xyz", "Token=****;"],
        ),
        (
            r#"{"ts":"2024-03-12T10:01:02Z","user":"bob","password": "hunter2","api_key":"k-123","amount":12}"#,
            &["hunter2", "k-123"],
            &[
                r#""password": "****""#,
                r#""api_key":"****""#,
                r#""amount":12"#,
            ],
        ),
        (
            "payment accepted card=4111 1111 1111 1111 order=20240312100102 amount=12.50",
            &["4111 1111 1111 1111"],
            &["card=**** order=20240312100102", "amount=12.50"],
        ),
        (
            "refund card 5500-0000-0000-0004 ts=1710237662000 id=1234567890123",
            &["5500-0000-0000-0004"],
            &["refund card ****", "ts=1710237662000", "id=1234567890123"],
        ),
        (
            "nothing secret here: GET /health 200 0.002s",
            &[],
            &["nothing secret here: GET /health 200 0.002s"],
        ),
    ];
    for (line, gone, kept) in cases {
        let mut entries = vec![entry(line, &[("job", "apps")])];
        p.run(&mut entries, &[]);
        assert_eq!(entries.len(), 1, "{line}");
        let out = &entries[0].line;
        for secret in *gone {
            assert!(!out.contains(secret), "{secret:?} left in {out:?}");
        }
        for text in *kept {
            assert!(out.contains(text), "{text:?} missing from {out:?}");
        }
    }
}
