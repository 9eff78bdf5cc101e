//! The item-by-item reading of Elasticsearch's answer to a `_bulk` request.

use serde::Deserialize;

/// What became of one document of a request that was answered 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Accepted,
    /// 429, or a 5xx: try this document again.
    Retry {
        status: u16,
        error: String,
    },
    /// Will never be accepted (mapping error, 400, 409 ...): dead letter.
    Rejected {
        status: u16,
        error: String,
    },
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    errors: bool,
}

#[derive(Deserialize)]
struct Full {
    #[serde(default)]
    items: Vec<Action>,
}

/// `{"index": {...}}`, `{"create": {...}}`: one key, the action, whatever it is.
#[derive(Deserialize)]
struct Action {
    #[serde(alias = "create", alias = "update", alias = "delete")]
    index: ItemResult,
}

#[derive(Deserialize)]
struct ItemResult {
    #[serde(default)]
    _index: Option<String>,
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Reads a 2xx `_bulk` answer for a request of `count` documents, in request order. An answer that
/// says `"errors": false` is all accepted without reading its items.
pub fn read_response(body: &[u8], count: usize) -> Result<Vec<ItemOutcome>, String> {
    let head: Head =
        serde_json::from_slice(body).map_err(|e| format!("unreadable _bulk answer: {e}"))?;
    if !head.errors {
        return Ok(vec![ItemOutcome::Accepted; count]);
    }
    let full: Full =
        serde_json::from_slice(body).map_err(|e| format!("unreadable _bulk answer: {e}"))?;
    if full.items.len() != count {
        return Err(format!(
            "the _bulk answer has {} items for {count} documents",
            full.items.len()
        ));
    }
    Ok(full.items.into_iter().map(|a| classify(a.index)).collect())
}

fn classify(item: ItemResult) -> ItemOutcome {
    let status = item.status;
    if (200..300).contains(&status) {
        return ItemOutcome::Accepted;
    }
    let mut error = format!("status {status}");
    if let Some(index) = &item._index {
        error = format!("index {index}: {error}");
    }
    if let Some(e) = &item.error {
        error.push_str(": ");
        error.push_str(&describe_error(e));
    }
    if status == 429 || status >= 500 {
        ItemOutcome::Retry { status, error }
    } else {
        ItemOutcome::Rejected { status, error }
    }
}

/// `type: reason (caused by type: reason)`, from an Elasticsearch error object.
pub fn describe_error(e: &serde_json::Value) -> String {
    let one = |e: &serde_json::Value| {
        let kind = e["type"].as_str().unwrap_or("error");
        match e["reason"].as_str() {
            Some(r) => format!("{kind}: {r}"),
            None => kind.to_string(),
        }
    };
    if let Some(s) = e.as_str() {
        return s.to_string();
    }
    let mut out = one(e);
    if e["caused_by"].is_object() {
        out.push_str(&format!(" (caused by {})", one(&e["caused_by"])));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_without_errors_is_all_accepted() {
        let body = br#"{"errors":false,"took":3,"items":[{"index":{"status":201}},{"index":{"status":201}}]}"#;
        assert_eq!(
            read_response(body, 2).unwrap(),
            vec![ItemOutcome::Accepted; 2]
        );
    }

    #[test]
    fn items_are_read_one_by_one() {
        let body = br#"{"took":30,"errors":true,"items":[
            {"create":{"_index":"l","_id":"1","status":201,"result":"created"}},
            {"create":{"_index":"l","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}},
            {"create":{"_index":"l","status":400,"error":{"type":"document_parsing_exception","reason":"[1:15] failed to parse field [n]","caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"x\""}}}},
            {"index":{"_index":"l","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},
            {"index":{"status":409,"error":"version conflict"}}
        ]}"#;
        let out = read_response(body, 5).unwrap();
        assert_eq!(out[0], ItemOutcome::Accepted);
        assert!(
            matches!(&out[1], ItemOutcome::Retry { status: 429, error } if error.contains("es_rejected_execution_exception"))
        );
        match &out[2] {
            ItemOutcome::Rejected { status: 400, error } => assert_eq!(
                error,
                "index l: status 400: document_parsing_exception: [1:15] failed to parse field [n] (caused by illegal_argument_exception: For input string: \"x\")"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(&out[3], ItemOutcome::Retry { status: 503, .. }));
        assert!(
            matches!(&out[4], ItemOutcome::Rejected { status: 409, error } if error == "status 409: version conflict")
        );
        assert!(read_response(body, 4)
            .unwrap_err()
            .contains("5 items for 4 documents"));
        assert!(read_response(b"<html>", 1).is_err());
    }
}
