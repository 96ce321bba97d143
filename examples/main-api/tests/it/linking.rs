//! Linking and conflicts (issue 10): each sequence that once gave an account
//! to the wrong person or froze a user, with its variants, in the orders
//! that broke it. A signup is claimed by the one rule it was created with;
//! a Clerk user's change is never refused for an unclaimed signup; a row
//! written after a failure never blocks a later link; a command that
//! committed is never recorded as failed; order never matters.

use clerk_sync_contract::command::Command;
use serde_json::{json, Value as Json};

use crate::sqlite::*;

/// Clerk users are created a minute after the signups (which happen at the
/// API's clock, from `START_MS`), or an hour before them.
const AFTER: i64 = START_MS + 60_000;
const BEFORE: i64 = START_MS - 3_600_000;

fn status_of(row: &Option<Json>) -> (Json, Json) {
    let row = row.as_ref().expect("row");
    (row["clerk_id"].clone(), row["sync_status"].clone())
}

/// Delivers `commands` in this order into a fresh API with these signups
/// (id, email, link_by), checking after every answer that each signup is
/// linked to nobody or to one of its `allowed` claimants: the final table.
fn run(
    signups: &[(&str, &str, &str)],
    commands: &[Command],
    allowed: &[(&str, &[&str])],
) -> Vec<Json> {
    let api = Api::new();
    for (id, email, link_by) in signups {
        signup(&api, id, email, link_by);
    }
    let taken = deliver_until_taken(&api, commands, |api, c, status| {
        assert!(
            status == 200 || status == 409 || status == 422,
            "{}: {status}",
            c.operation_id
        );
        for (id, claimants) in allowed {
            let linked = api.row(id).unwrap()["clerk_id"].clone();
            assert!(
                linked.is_null() || claimants.iter().any(|c| linked == **c),
                "after {}: {id} linked to {linked}",
                c.operation_id
            );
        }
    });
    assert!(taken.is_some(), "stuck: some command is refused for ever");
    table(&api)
}

/// Every permutation of `commands` (up to 6 of them) ends in one table.
fn every_order_ends_alike(
    signups: &[(&str, &str, &str)],
    commands: &[Command],
    allowed: &[(&str, &[&str])],
) -> Vec<Json> {
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for i in 0..=p.len() {
                let mut q = p.clone();
                q.insert(i, n - 1);
                out.push(q);
            }
        }
        out
    }
    assert!(commands.len() <= 6);
    let first = run(signups, commands, allowed);
    for p in permutations(commands.len()) {
        let order: Vec<Command> = p.iter().map(|&i| commands[i].clone()).collect();
        let ops: Vec<&str> = order.iter().map(|c| c.operation_id.as_str()).collect();
        assert_eq!(run(signups, &order, allowed), first, "order {ops:?}");
    }
    first
}

fn row<'a>(table: &'a [Json], key: &str) -> &'a Json {
    table
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no row {key} in {table:#?}"))
}

fn has_row(table: &[Json], key: &str) -> bool {
    table.iter().any(|r| r["key"] == key)
}

// ---- 1. a row written after a failure never blocks a later link ---------

#[test]
fn an_unverified_email_then_verified_links_the_invitation() {
    let api = Api::new();
    signup(&api, "app_1", "v@x.com", "email");
    let created = Event::created("msg_c", "user_a", AFTER, Some("v@x.com")).unverified();
    // Not claimed by an unverified email, and not refused either.
    let body = api.expect(&created.command(), 200);
    assert_eq!(body["outcome"], "applied");
    let signup_row = api.row("app_1").unwrap();
    assert_eq!(signup_row["clerk_id"], Json::Null);
    assert_eq!(signup_row["sync_status"], "failed");
    assert_eq!(signup_row["email"], Json::Null, "the Clerk user holds it");
    let error = signup_row["sync_error"].as_str().unwrap();
    assert!(error.contains("Clerk user user_a"), "{error}");
    assert!(error.contains("invitation"), "{error}");
    let own = api.user("user_a").1["user"].clone();
    assert_eq!(own["email"], "v@x.com");
    assert_eq!(own["link_by"], Json::Null, "the sync's own row");

    // Verified: the signup is claimed, the sync's row gives way.
    let verified = created.updated("msg_v", AFTER + 1_000).verified();
    assert_eq!(api.expect(&verified.command(), 200)["outcome"], "applied");
    let u = api.user("user_a").1;
    assert_eq!(u["user"]["id"], "app_1", "{u}");
    assert_eq!(u["user"]["sync_status"], "synced");
    assert_eq!(u["user"]["sync_error"], Json::Null);
    assert_eq!(u["user"]["email"], "v@x.com");
    assert_eq!(u["user"]["link_by"], "email");
    assert_eq!(api.rows_of("user_a").len(), 1);
    assert!(api
        .db
        .query("SELECT id FROM users WHERE id <> 'app_1'", &[])
        .is_empty());

    // And every later update applies.
    let renamed = verified.updated("msg_n", AFTER + 2_000);
    api.expect(&renamed.command(), 200);
    assert_eq!(
        api.row("app_1").unwrap()["first_name"],
        renamed.first_name()
    );
}

#[test]
fn an_unverified_then_verified_email_ends_alike_in_every_order() {
    let created = Event::created("msg_c", "user_a", AFTER, Some("v@x.com")).unverified();
    let verified = created.updated("msg_v", AFTER + 1_000).verified();
    let renamed = verified.updated("msg_n", AFTER + 2_000);
    let t = every_order_ends_alike(
        &[("app_1", "v@x.com", "email")],
        &[created.command(), verified.command(), renamed.command()],
        &[("app_1", &["user_a"])],
    );
    let r = row(&t, "signup:app_1");
    assert_eq!(
        (&r["clerk_id"], &r["sync_status"]),
        (&json!("user_a"), &json!("synced"))
    );
    assert_eq!(r["first_name"], renamed.first_name());
    assert!(!has_row(&t, "clerk:user_a"));
}

#[test]
fn an_external_id_set_after_a_first_create_that_could_not_show_its_address_links() {
    let api = Api::new();
    signup(&api, "app_1", "v@x.com", "external_id");
    // user_a's first create carries an address a newer Clerk user holds:
    // applied, its row shows no email and says why.
    let z = Event::created("msg_z", "user_z", AFTER + 10, Some("v@x.com"));
    api.expect(&z.command(), 200);
    let a = Event::created("msg_a", "user_a", AFTER, Some("v@x.com"));
    api.expect(&a.command(), 200);
    let row = api.user("user_a").1["user"].clone();
    assert_eq!(
        (&row["sync_status"], &row["email"]),
        (&json!("failed"), &Json::Null)
    );
    // The external id is set in Clerk: the signup is claimed, the sync's
    // row gives way.
    let with_id = a.updated("msg_a2", AFTER + 30).external_id(Some("app_1"));
    assert_eq!(api.expect(&with_id.command(), 200)["outcome"], "applied");
    let u = api.user("user_a").1;
    assert_eq!(u["user"]["id"], "app_1", "{u}");
    assert_eq!(u["user"]["email"], "v@x.com", "newer than user_z's now");
    assert_eq!(u["user"]["sync_status"], "synced");
    assert_eq!(api.rows_of("user_a").len(), 1);
    // user_z's own change arrives: it had moved away; all synced.
    api.expect(
        &z.updated("msg_z2", AFTER + 20)
            .email(Some("z@x.com"))
            .command(),
        200,
    );
    assert_eq!(api.user("user_z").1["sync_status"], "synced");
    assert_eq!(api.user("user_a").1["user"]["sync_status"], "synced");
}

#[test]
fn an_external_id_set_after_a_first_create_that_applied_links() {
    let first = Event::created("msg_a", "user_a", AFTER, Some("v@x.com"));
    let with_id = first
        .updated("msg_a2", AFTER + 30)
        .external_id(Some("app_1"));
    let t = every_order_ends_alike(
        &[("app_1", "other@x.com", "external_id")],
        &[first.command(), with_id.command()],
        &[("app_1", &["user_a"])],
    );
    let r = row(&t, "signup:app_1");
    assert_eq!(r["clerk_id"], "user_a");
    assert_eq!(r["email"], "v@x.com");
    assert_eq!(r["sync_status"], "synced");
    assert!(!has_row(&t, "clerk:user_a"));
}

#[test]
fn a_first_create_lost_to_a_database_error_then_an_external_id_links() {
    let api = Api::new();
    signup(&api, "app_1", "p@x.com", "external_id");
    let a = Event::created("msg_a", "user_a", AFTER, Some("a@x.com"));
    api.db.faults.borrow_mut().push_back(Fault::Before);
    assert_eq!(api.expect(&a.command(), 500)["error"], "database_error");
    assert_eq!(api.user("user_a").1["sync_status"], "failed");
    let with_id = a.updated("msg_a2", AFTER + 30).external_id(Some("app_1"));
    api.expect(&with_id.command(), 200);
    api.expect(&a.command(), 200);
    let u = api.user("user_a").1;
    assert_eq!(u["user"]["id"], "app_1");
    assert_eq!(u["user"]["sync_status"], "synced");
    assert_eq!(api.rows_of("user_a").len(), 1);
}

#[test]
fn a_failure_shows_on_the_signup_its_user_wins() {
    let api = Api::new();
    signup(&api, "app_1", "own@x.com", "external_id");
    let c = Event::created("msg_c", "user_c", AFTER, Some("c@x.com")).external_id(Some("app_1"));
    api.db.faults.borrow_mut().push_back(Fault::Before);
    api.expect(&c.command(), 500);
    let u = api.user("user_c").1;
    assert_eq!(u["user"]["id"], "app_1", "{u}");
    assert_eq!(u["user"]["sync_status"], "failed");
    assert_eq!(
        u["user"]["email"], "own@x.com",
        "the signup's data, as it was"
    );
    assert_eq!(u["user"]["first_name"], "Pending");
    // The redelivery applies on the same row.
    api.expect(&c.command(), 200);
    let u = api.user("user_c").1;
    assert_eq!(
        (&u["user"]["id"], &u["user"]["sync_status"]),
        (&json!("app_1"), &json!("synced"))
    );
    assert_eq!(u["user"]["email"], "c@x.com");
}

// ---- 2. email linking never hands an account to another person ---------

#[test]
fn a_signup_waiting_for_an_external_id_is_never_claimed_by_email() {
    // A: external_id app_1 and e, then moves to f; B signs up with e.
    let a1 = Event::created("msg_a1", "user_a", AFTER, Some("e@x.com")).external_id(Some("app_1"));
    let a2 = a1.updated("msg_a2", AFTER + 1_000).email(Some("f@x.com"));
    let b1 = Event::created("msg_b1", "user_b", AFTER + 2_000, Some("e@x.com"));
    let t = every_order_ends_alike(
        &[("app_1", "e@x.com", "external_id")],
        &[a1.command(), a2.command(), b1.command()],
        &[("app_1", &["user_a"])],
    );
    let r = row(&t, "signup:app_1");
    assert_eq!(
        (&r["clerk_id"], &r["email"]),
        (&json!("user_a"), &json!("f@x.com"))
    );
    let b = row(&t, "clerk:user_b");
    assert_eq!((&b["email"], &b["deleted"]), (&json!("e@x.com"), &json!(0)));

    // The order that gave app_1 to B: B's event first, every answer 2xx.
    let api = Api::new();
    signup(&api, "app_1", "e@x.com", "external_id");
    api.expect(&b1.command(), 200);
    assert_eq!(status_of(&api.row("app_1")), (Json::Null, json!("failed")));
    api.expect(&a2.command(), 200);
    assert_eq!(api.row("app_1").unwrap()["clerk_id"], "user_a");
    api.expect(&a1.command(), 200);
    assert_eq!(api.user("user_b").1["user"]["link_by"], Json::Null);
}

#[test]
fn an_invitation_goes_to_the_first_user_created_with_its_email() {
    // Email rule: A accepts the invitation (created with e, verified), then
    // moves to f; B later signs up with e. A's first event arrives last.
    let a1 = Event::created("msg_a1", "user_a", AFTER, Some("e@x.com"));
    let a2 = a1.updated("msg_a2", AFTER + 1_000).email(Some("f@x.com"));
    let b1 = Event::created("msg_b1", "user_b", AFTER + 2_000, Some("e@x.com"));
    let t = every_order_ends_alike(
        &[("app_1", "e@x.com", "email")],
        &[a1.command(), a2.command(), b1.command()],
        &[("app_1", &["user_a", "user_b"])],
    );
    let r = row(&t, "signup:app_1");
    assert_eq!(
        (&r["clerk_id"], &r["email"]),
        (&json!("user_a"), &json!("f@x.com"))
    );
    assert_eq!(row(&t, "clerk:user_b")["email"], "e@x.com");
}

#[test]
fn a_deleted_claimant_keeps_its_signup_and_the_next_user_of_its_email_gets_a_row() {
    for link_by in ["external_id", "email"] {
        let a1 =
            Event::created("msg_a1", "user_a", AFTER, Some("e@x.com")).external_id(Some("app_1"));
        let b1 = Event::created("msg_b1", "user_b", AFTER + 2_000, Some("e@x.com"));
        // B claims an invitation by its rule too, until A's earlier claim
        // arrives; never a signup waiting for an external id.
        let claimants: &[&str] = if link_by == "email" {
            &["user_a", "user_b"]
        } else {
            &["user_a"]
        };
        for with_external_id in [false, true] {
            let t = every_order_ends_alike(
                &[("app_1", "e@x.com", link_by)],
                &[
                    a1.command(),
                    a1.deleted("msg_ad", AFTER + 1_000, with_external_id),
                    b1.command(),
                ],
                &[("app_1", claimants)],
            );
            let r = row(&t, "signup:app_1");
            assert_eq!(
                (&r["clerk_id"], &r["deleted"]),
                (&json!("user_a"), &json!(1)),
                "{link_by}"
            );
            let b = row(&t, "clerk:user_b");
            assert_eq!((&b["email"], &b["deleted"]), (&json!("e@x.com"), &json!(0)));
        }
    }
}

#[test]
fn a_delete_alone_claims_by_external_id_and_its_data_follows() {
    let a1 = Event::created("msg_a1", "user_a", AFTER, Some("a@x.com")).external_id(Some("app_1"));
    let t = every_order_ends_alike(
        &[("app_1", "p@x.com", "external_id")],
        &[a1.deleted("msg_ad", AFTER + 1_000, true), a1.command()],
        &[("app_1", &["user_a"])],
    );
    let r = row(&t, "signup:app_1");
    assert_eq!(
        (&r["clerk_id"], &r["deleted"], &r["email"]),
        (&json!("user_a"), &json!(1), &json!("a@x.com"))
    );

    // Only the delete: the signup is linked and deleted, with its own data.
    let api = Api::new();
    signup(&api, "app_1", "p@x.com", "external_id");
    api.expect(&a1.deleted("msg_ad", AFTER + 1_000, true), 200);
    let r = api.row("app_1").unwrap();
    assert_eq!(
        (&r["clerk_id"], &r["email"]),
        (&json!("user_a"), &json!("p@x.com"))
    );
    assert!(r["deleted_at"].is_string());
}

#[test]
fn a_user_that_only_later_verifies_an_invited_address_does_not_claim_it() {
    // u was created with another address, after the signup; it then takes
    // the invited address: not the invitee.
    let u1 = Event::created("msg_u1", "user_u", AFTER, Some("a@x.com"));
    let u2 = u1.updated("msg_u2", AFTER + 1_000).email(Some("new@x.com"));
    let t = every_order_ends_alike(
        &[("app_1", "new@x.com", "email")],
        &[u1.command(), u2.command()],
        &[("app_1", &[])],
    );
    let r = row(&t, "signup:app_1");
    assert_eq!(
        (&r["clerk_id"], &r["sync_status"], &r["email"]),
        (&Json::Null, &json!("failed"), &Json::Null)
    );
    assert_eq!(row(&t, "clerk:user_u")["email"], "new@x.com");
}

#[test]
fn a_user_created_before_the_signup_never_claims_it_by_email() {
    let early = Event::created("msg_e", "user_e", BEFORE, Some("e@x.com"));
    let t = every_order_ends_alike(
        &[("app_1", "e@x.com", "email")],
        &[early.command()],
        &[("app_1", &[])],
    );
    assert_eq!(row(&t, "signup:app_1")["clerk_id"], Json::Null);
    assert_eq!(row(&t, "clerk:user_e")["email"], "e@x.com");
}

// ---- 3. no signup freezes a linked user ----------------------------------

#[test]
fn a_signup_never_freezes_a_linked_user() {
    for link_by in ["external_id", "email"] {
        let api = Api::new();
        let u1 = Event::created("msg_u1", "user_u", BEFORE, Some("a@x.com"));
        api.expect(&u1.command(), 200);
        signup(&api, "app_1", "new@x.com", link_by);
        // u moves to the signup's address: applied, the signup records why.
        let u2 = u1
            .updated("msg_u2", START_MS + 1_000)
            .email(Some("new@x.com"));
        assert_eq!(api.expect(&u2.command(), 200)["outcome"], "applied");
        let u = api.user("user_u").1;
        assert_eq!(
            (&u["user"]["email"], &u["sync_status"]),
            (&json!("new@x.com"), &json!("synced"))
        );
        let r = api.row("app_1").unwrap();
        assert_eq!(
            (&r["clerk_id"], &r["sync_status"], &r["email"]),
            (&Json::Null, &json!("failed"), &Json::Null)
        );
        let error = r["sync_error"].as_str().unwrap();
        assert!(
            error.starts_with("the email is used by Clerk user user_u"),
            "{error}"
        );
        let status = api.status();
        assert!(
            status["failed_users"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["id"] == "app_1"),
            "{status}"
        );
        // Every later update of u applies.
        let u3 = u2.updated("msg_u3", START_MS + 2_000);
        api.expect(&u3.command(), 200);
        assert_eq!(api.user("user_u").1["user"]["first_name"], u3.first_name());
        // u moves on: the signup gets its address back and waits again.
        let u4 = u3
            .updated("msg_u4", START_MS + 3_000)
            .email(Some("b@x.com"));
        api.expect(&u4.command(), 200);
        let r = api.row("app_1").unwrap();
        assert_eq!(
            (&r["sync_status"], &r["email"], &r["sync_error"]),
            (&json!("pending"), &json!("new@x.com"), &Json::Null)
        );
    }
}

#[test]
fn a_signup_conflict_ends_alike_in_every_order() {
    let u1 = Event::created("msg_u1", "user_u", BEFORE, Some("a@x.com"));
    let u2 = u1
        .updated("msg_u2", START_MS + 1_000)
        .email(Some("new@x.com"));
    let u3 = u2.updated("msg_u3", START_MS + 2_000);
    let t = every_order_ends_alike(
        &[("app_1", "new@x.com", "external_id")],
        &[u1.command(), u2.command(), u3.command()],
        &[("app_1", &[])],
    );
    assert_eq!(row(&t, "signup:app_1")["sync_status"], "failed");
    let u = row(&t, "clerk:user_u");
    assert_eq!(
        (&u["email"], &u["first_name"]),
        (&json!("new@x.com"), &json!(u3.first_name()))
    );
    // A delete frees the address.
    let t = every_order_ends_alike(
        &[("app_1", "new@x.com", "external_id")],
        &[u2.command(), u2.deleted("msg_ud", START_MS + 5_000, false)],
        &[("app_1", &[])],
    );
    let r = row(&t, "signup:app_1");
    assert_eq!(
        (&r["sync_status"], &r["email"]),
        (&json!("pending"), &json!("new@x.com"))
    );
}

#[test]
fn a_signup_for_an_address_in_use_is_refused() {
    let api = Api::new();
    api.expect(
        &Event::created("msg_u1", "user_u", BEFORE, Some("a@x.com")).command(),
        200,
    );
    let (s, body) = api.create_user(&json!({"email": "A@x.com", "link_by": "email"}));
    assert_eq!((s, &body["error"]), (422, &json!("cannot_apply")), "{body}");
    let (s, body) = api.create_user(&json!({"email": "b@x.com", "link_by": "username"}));
    assert_eq!((s, &body["error"]), (400, &json!("invalid_user")), "{body}");
}

#[test]
fn clerk_users_trading_addresses_never_wait_on_each_other() {
    // A and B trade a@ and b@ through c@, which C takes last. Delivered as
    // A1 B1 C1 first, every later version needed an address an older one
    // held: refused, each waiting on another, for ever (found by the
    // convergence property). The newer version holds an address now.
    let a1 = Event::created("msg_a1", "user_a", AFTER, Some("a@x.com"));
    let b1 = Event::created("msg_b1", "user_b", AFTER + 1, Some("b@x.com"));
    let b2 = b1.updated("msg_b2", AFTER + 2).email(Some("c@x.com"));
    let a2 = a1.updated("msg_a2", AFTER + 3).email(Some("b@x.com"));
    let b3 = b2.updated("msg_b3", AFTER + 4).email(Some("a@x.com"));
    let c1 = Event::created("msg_c1", "user_c", AFTER + 5, Some("c@x.com"));
    let t = every_order_ends_alike(
        &[],
        &[
            a1.command(),
            b1.command(),
            c1.command(),
            b2.command(),
            a2.command(),
            b3.command(),
        ],
        &[],
    );
    for (key, email) in [
        ("clerk:user_a", "b@x.com"),
        ("clerk:user_b", "a@x.com"),
        ("clerk:user_c", "c@x.com"),
    ] {
        let r = row(&t, key);
        assert_eq!(
            (&r["email"], &r["sync_status"]),
            (&json!(email), &json!("synced")),
            "{key}"
        );
    }
}

// ---- 4. a command that committed is never recorded as failed ------------

#[test]
fn a_commit_followed_by_a_database_error_is_applied_not_failed() {
    let api = Api::new();
    let a = Event::created("msg_a", "user_a", AFTER, Some("a@x.com"));
    api.db.faults.borrow_mut().push_back(Fault::AfterCommit);
    let body = api.expect(&a.command(), 200);
    assert_eq!(body["outcome"], "applied", "it committed: {body}");
    let log = api.last_log.borrow().clone().unwrap();
    assert!(log.committed_despite_error && !log.audit_failed);
    let u = api.user("user_a").1;
    assert_eq!(
        (&u["sync_status"], &u["user"]["sync_error"]),
        (&json!("synced"), &Json::Null)
    );
    // The retry: 409, and the row stays synced.
    assert_eq!(api.expect(&a.command(), 409)["error"], "already_applied");
    let u = api.user("user_a").1;
    assert_eq!(u["sync_status"], "synced");
    let trail: Vec<_> = u["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].clone())
        .collect();
    assert_eq!(
        trail,
        [json!("duplicate"), json!("applied")],
        "never 'failed'"
    );
    assert_eq!(api.status()["users"]["by_sync_status"]["failed"], 0);
}

#[test]
fn when_the_failure_cannot_be_recorded_either_nothing_is_marked() {
    let api = Api::new();
    let a = Event::created("msg_a", "user_a", AFTER, Some("a@x.com"));
    // The apply batch commits and its answer is lost; so is the database.
    api.db
        .faults
        .borrow_mut()
        .extend([Fault::AfterCommit, Fault::Before]);
    assert_eq!(api.expect(&a.command(), 500)["error"], "database_error");
    assert!(api.last_log.borrow().as_ref().unwrap().audit_failed);
    assert_eq!(api.user("user_a").1["sync_status"], "synced");
    api.expect(&a.command(), 409);
    assert_eq!(api.user("user_a").1["sync_status"], "synced");
}

#[test]
fn a_failure_before_commit_is_recorded_and_cleared_by_the_retry() {
    let api = Api::new();
    let a = Event::created("msg_a", "user_a", AFTER, Some("a@x.com"));
    api.expect(&a.command(), 200);
    let a2 = a.updated("msg_a2", AFTER + 1_000);
    api.db.faults.borrow_mut().push_back(Fault::Before);
    api.expect(&a2.command(), 500);
    let u = api.user("user_a").1;
    assert_eq!(u["sync_status"], "failed");
    assert_eq!(
        u["user"]["first_name"],
        a.first_name(),
        "the data is as it was"
    );
    // An older command taken meanwhile does not hide the failure.
    api.expect(&a.updated("msg_a0", AFTER + 500).command(), 200);
    assert_eq!(api.user("user_a").1["sync_status"], "failed");
    api.expect(&a2.command(), 200);
    let u = api.user("user_a").1;
    assert_eq!(
        (&u["sync_status"], &u["user"]["first_name"]),
        (&json!("synced"), &json!(a2.first_name()))
    );
}

// ---- 5. ties and versions without a time ---------------------------------

#[test]
fn equal_versions_end_alike_in_either_order() {
    use clerk_sync_main_api::request::parse_command;
    let a = Event::created("msg_1", "user_a", AFTER, Some("one@x.com"));
    let other = a.updated("msg_2", AFTER).email(Some("two@x.com"));
    let key = |e: &Event| parse_command(&e.command().to_json()).unwrap().data_key();
    let expected = if key(&other) > key(&a) { &other } else { &a };
    let t = every_order_ends_alike(&[], &[a.command(), other.command()], &[]);
    let r = row(&t, "clerk:user_a");
    assert_eq!(r["email"], json!(expected.email), "the greater data digest");
    assert_eq!(r["last_operation_id"], json!(expected.op));
    // The same data again under another operation (a re-sync, say): the
    // data is unchanged whichever operation wins, and the winner is fixed.
    let mut again = expected.updated("msg_0", AFTER).command();
    again.event_type = expected.event_type.into();
    let u = every_order_ends_alike(&[], &[a.command(), other.command(), again], &[]);
    let r = row(&u, "clerk:user_a");
    assert_eq!(r["email"], json!(expected.email));
    assert_eq!(
        r["last_operation_id"],
        json!(expected.op),
        "the greater operation id"
    );
}

#[test]
fn a_retried_message_without_a_time_never_outranks_a_newer_one() {
    // No updated_at: the version is Clerk's created_at, never occurred_at
    // (the relay's fallback may be a retry's signature time).
    let api = Api::new();
    let newer = Event::created("msg_new", "user_a", AFTER, Some("new@x.com"))
        .updated("msg_new", AFTER + 5_000);
    api.expect(&newer.command(), 200);
    let mut old = Event::created("msg_old", "user_a", AFTER, Some("old@x.com"));
    old.updated_ms = None;
    let mut retried = old.command();
    retried.occurred_at = ms(AFTER + 999_999);
    assert_eq!(api.expect(&retried, 200)["outcome"], "stale");
    assert_eq!(api.user("user_a").1["user"]["email"], "new@x.com");
    let t = every_order_ends_alike(&[], &[newer.command(), retried], &[]);
    assert_eq!(row(&t, "clerk:user_a")["email"], "new@x.com");
}

#[test]
fn an_email_that_changes_only_in_case_ends_alike() {
    let a = Event::created("msg_1", "user_a", AFTER, Some("Mixed@x.com"));
    let lower = a.updated("msg_2", AFTER + 1).email(Some("mixed@x.com"));
    let t = every_order_ends_alike(&[], &[a.command(), lower.command()], &[]);
    assert_eq!(row(&t, "clerk:user_a")["email"], "mixed@x.com");
}
