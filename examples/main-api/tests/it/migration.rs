//! `0003_linking.sql` on a database that already has rows: the application's
//! unlinked signups keep waiting for their external id; rows already linked
//! stay with their Clerk user (they cannot be told apart from rows the sync
//! made, so none is ever removed or handed over); a failure placeholder is
//! the sync's own row; the Clerk data already held still orders upserts.

use serde_json::{json, Value as Json};

use crate::sqlite::*;

const LEGACY: &str = "
INSERT INTO users (id, email, first_name, sync_status, created_at)
VALUES ('legacy_p', 'p@x.com', 'Old', 'pending', '2025-06-01T00:00:00.000Z');
INSERT INTO users (id, clerk_id, email, first_name, sync_status, clerk_updated_at,
                   last_operation_id, created_at)
VALUES ('legacy_l', 'user_l', 'l@x.com', 'Linked', 'synced', '2025-06-02T00:00:00.000Z',
        'msg_old_l', '2025-06-01T00:00:00.000Z');
INSERT INTO users (id, clerk_id, sync_status, sync_error, created_at)
VALUES ('legacy_f', 'user_f', 'failed', 'the email belongs to another user', '2025-06-03T00:00:00.000Z');
INSERT INTO users (id, clerk_id, email, first_name, sync_status, clerk_updated_at, deleted_at,
                   created_at)
VALUES ('legacy_d', 'user_d', 'd@x.com', 'Gone', 'synced', '2025-06-02T00:00:00.000Z',
        '2025-06-04T00:00:00.000Z', '2025-06-01T00:00:00.000Z');
INSERT INTO clerk_tombstones VALUES ('user_d', '2025-06-04T00:00:00.000Z', 'msg_old_d');
";

fn migrated_with_legacy_rows() -> Api {
    let files = migrations();
    let (before, after) = files.split_at(2);
    let db = Sqlite::with_migrations(before);
    db.execute(LEGACY).unwrap();
    for f in after {
        db.execute(&std::fs::read_to_string(f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    Api::with_db(db)
}

#[test]
fn rows_from_before_keep_their_meaning() {
    let api = migrated_with_legacy_rows();
    let signups = api
        .db
        .query("SELECT id, link_by FROM signups ORDER BY id", &[]);
    assert_eq!(
        signups,
        [
            json!({"id": "legacy_d", "link_by": "external_id"}),
            json!({"id": "legacy_l", "link_by": "external_id"}),
            json!({"id": "legacy_p", "link_by": "external_id"}),
        ],
        "the placeholder is not a signup"
    );

    // The unlinked signup is claimed by its external id (never by email).
    let by_email = Event::created("msg_e", "user_e", START_MS + 60_000, Some("p@x.com"));
    api.expect(&by_email.command(), 200);
    assert_eq!(api.row("legacy_p").unwrap()["clerk_id"], Json::Null);
    let p = Event::created("msg_p", "user_p", START_MS + 60_000, Some("q@x.com"))
        .external_id(Some("legacy_p"));
    api.expect(&p.command(), 200);
    let row = api.row("legacy_p").unwrap();
    assert_eq!(
        (&row["clerk_id"], &row["email"]),
        (&json!("user_p"), &json!("q@x.com"))
    );

    // The linked row's Clerk data still orders upserts: an older one is stale.
    let l = Event::created(
        "msg_l1",
        "user_l",
        START_MS - 400 * 86_400_000,
        Some("x@x.com"),
    );
    assert_eq!(api.expect(&l.command(), 200)["outcome"], "stale");
    assert_eq!(api.row("legacy_l").unwrap()["email"], "l@x.com");
    // It stays with its Clerk user, whatever that user claims later.
    signup(&api, "app_new", "new@x.com", "external_id");
    let l2 = l
        .updated("msg_l2", START_MS + 120_000)
        .external_id(Some("app_new"));
    assert_eq!(api.expect(&l2.command(), 200)["outcome"], "applied");
    let row = api.row("legacy_l").unwrap();
    assert_eq!(
        (&row["clerk_id"], &row["email"]),
        (&json!("user_l"), &json!("x@x.com"))
    );
    assert_eq!(api.row("app_new").unwrap()["clerk_id"], Json::Null);

    // The placeholder is filled by its user's first command that applies.
    let f = Event::created("msg_f", "user_f", START_MS + 60_000, Some("f@x.com"));
    api.expect(&f.command(), 200);
    let u = api.user("user_f").1;
    assert_eq!(u["user"]["id"], "legacy_f");
    assert_eq!(
        (&u["sync_status"], &u["user"]["email"]),
        (&json!("synced"), &json!("f@x.com"))
    );

    // A deleted user stays deleted.
    let d = Event::created("msg_d", "user_d", START_MS + 60_000, Some("d2@x.com"));
    assert_eq!(api.expect(&d.command(), 200)["outcome"], "ignored_deleted");
    assert!(api.row("legacy_d").unwrap()["deleted_at"].is_string());
}
