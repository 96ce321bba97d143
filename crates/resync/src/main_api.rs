//! The part of the main API a run uses, in one place.
//!
//! - `POST /internal/clerk-sync/batch`: the contract's [`BatchRequest`]; the
//!   answer's results must name the commands sent, in order.
//! - `GET /internal/users?live=true|sync_status=failed|pending&limit=N[&after=<cursor>]`:
//!   ```json
//!   {"users":[{"clerk_id":"user_…"|null,"email":…,"external_id":…,"sync_status":"…",
//!              "sync_error":…,"last_sync_attempt":…,"deleted":false}, …],
//!    "next_after":"<cursor>"|null}
//!   ```
//!   Rows ordered by `clerk_id`; `next_after` is the cursor of the next page
//!   (treated as opaque), `null` on the last. `sync_status=pending` includes
//!   rows with no `clerk_id` yet. Fields the run does not use may be absent.
//!
//! [`BatchRequest`]: clerk_sync_contract::BatchRequest

use clerk_sync_contract::{BatchResponse, CommandResult};
use serde::Deserialize;

use crate::clerk_api::{push_param, BadResponse};

pub const ROWS_PATH: &str = "/internal/users";
/// Longest `next_after` cursor accepted (it is persisted).
pub const MAX_CURSOR_LEN: usize = 512;

/// Which rows a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFilter {
    /// Rows with a Clerk id that are not deleted: the deletion sweep.
    Live,
    Failed,
    Pending,
}

pub fn rows_path(filter: RowFilter, after: Option<&str>, limit: u32) -> String {
    let filter = match filter {
        RowFilter::Live => "live=true",
        RowFilter::Failed => "sync_status=failed",
        RowFilter::Pending => "sync_status=pending",
    };
    let mut path = format!("{ROWS_PATH}?{filter}&limit={limit}");
    if let Some(after) = after {
        push_param(&mut path, "after", after);
    }
    path
}

/// One row, as much of it as a run reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Row {
    #[serde(default)]
    pub clerk_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_false")]
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RowsPage {
    pub users: Vec<Row>,
    #[serde(default)]
    pub next_after: Option<String>,
}

fn null_as_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// Reads a rows page asked with `limit` after the cursor `after`. A page
/// that would not move the cursor is refused: it would page forever.
pub fn parse_rows(body: &[u8], limit: usize, after: Option<&str>) -> Result<RowsPage, BadResponse> {
    let page: RowsPage = serde_json::from_slice(body)
        .map_err(|_| BadResponse("the main api answered the rows with an unexpected shape"))?;
    if page.users.len() > limit {
        return Err(BadResponse(
            "the main api answered with more rows than asked for",
        ));
    }
    match page.next_after.as_deref() {
        Some(next) if next.is_empty() || next.len() > MAX_CURSOR_LEN => {
            Err(BadResponse("the main api answered with an unusable cursor"))
        }
        Some(next) if Some(next) == after => Err(BadResponse(
            "the main api answered with the same cursor again",
        )),
        _ => Ok(page),
    }
}

/// Reads a batch answer: `{"ok":true,"results":[…]}`, one result per
/// command sent, with its operation id, in order.
pub fn parse_batch(body: &[u8], sent: &[String]) -> Result<Vec<CommandResult>, BadResponse> {
    let answer: BatchResponse = serde_json::from_slice(body)
        .map_err(|_| BadResponse("the main api answered the batch with an unexpected shape"))?;
    if !answer.ok {
        return Err(BadResponse("the main api answered the batch with ok false"));
    }
    let matches = answer.results.len() == sent.len()
        && answer
            .results
            .iter()
            .zip(sent)
            .all(|(r, id)| &r.operation_id == id);
    if !matches {
        return Err(BadResponse("the main api's results do not match the batch"));
    }
    Ok(answer.results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clerk_sync_contract::Outcome;

    #[test]
    fn paths() {
        assert_eq!(
            rows_path(RowFilter::Live, None, 100),
            "/internal/users?live=true&limit=100"
        );
        assert_eq!(
            rows_path(RowFilter::Pending, Some("user 1"), 7),
            "/internal/users?sync_status=pending&limit=7&after=user%201"
        );
    }

    #[test]
    fn rows() {
        let body = br#"{"users":[{"clerk_id":"u1","email":"a@x","external_id":null,"sync_status":"failed",
            "sync_error":"x","last_sync_attempt":null,"deleted":false},{"clerk_id":null,"deleted":null}],"next_after":"u1"}"#;
        let page = parse_rows(body, 100, None).unwrap();
        assert_eq!(page.users.len(), 2);
        assert_eq!(page.users[0].clerk_id.as_deref(), Some("u1"));
        assert!(!page.users[1].deleted);
        assert_eq!(page.next_after.as_deref(), Some("u1"));
        assert!(parse_rows(body, 1, None).is_err());
        assert!(parse_rows(body, 100, Some("u1")).is_err());
        assert!(parse_rows(br#"{"users":[],"next_after":""}"#, 100, None).is_err());
        assert!(parse_rows(br#"{"users":{}}"#, 100, None).is_err());
        assert!(parse_rows(br#"{"users":[]}"#, 100, None)
            .unwrap()
            .next_after
            .is_none());
    }

    #[test]
    fn batch_answers_must_match_what_was_sent() {
        let sent = vec!["a".to_owned(), "b".to_owned()];
        let good = br#"{"ok":true,"results":[{"operation_id":"a","outcome":"applied","error":null},
            {"operation_id":"b","outcome":"rejected","error":"invalid_command"}]}"#;
        let results = parse_batch(good, &sent).unwrap();
        assert_eq!(results[1].outcome, Outcome::Rejected);
        let swapped = br#"{"ok":true,"results":[{"operation_id":"b","outcome":"applied"},{"operation_id":"a","outcome":"applied"}]}"#;
        assert!(parse_batch(swapped, &sent).is_err());
        let short = br#"{"ok":true,"results":[{"operation_id":"a","outcome":"applied"}]}"#;
        assert!(parse_batch(short, &sent).is_err());
        let not_ok = br#"{"ok":false,"results":[]}"#;
        assert!(parse_batch(not_ok, &[]).is_err());
        assert!(parse_batch(b"", &sent).is_err());
    }
}
