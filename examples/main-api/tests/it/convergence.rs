//! Convergence: order never matters. Seeded (`CONVERGENCE_SEED`), many
//! schedules per run (`CONVERGENCE_SCHEDULES`).
//!
//! - One Clerk user's versions and delete, delivered 1–3 times each in a
//!   shuffled order: the state the newest `updated_at` implies, deleted
//!   when a delete was among them.
//! - Linking: a simulated Clerk history (signups of both rules, users
//!   created before and after them, email changes, unverified then verified
//!   addresses, external ids set late, deletes, addresses reused after a
//!   delete, equal versions), delivered in Clerk's order and in shuffled
//!   orders with repeats, some meeting database faults before or after a
//!   commit, every command not taken redelivered as Svix does: every order
//!   ends in the same table, nothing stays refused or failed, and no
//!   signup is ever linked, even for a moment, to a Clerk user that did
//!   not claim it by its rule.

use std::collections::HashSet;

use clerk_sync_contract::command::{Command, CommandKind};
use serde_json::{json, Value as Json};

use crate::sqlite::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Schedule {
    clerk_id: String,
    deliveries: Vec<Command>,
    distinct: usize,
    newest: (i64, String),
    deleted: bool,
}

/// 1–4 versions of one user (created, then updated), maybe a delete; each
/// command delivered 1–3 times; all shuffled.
fn schedule(rng: &mut fastrand::Rng, n: u64) -> Schedule {
    let clerk_id = format!("user_conv_{n}");
    let versions = 1 + rng.u64(..4) as i64;
    let mut commands = Vec::new();
    let mut t = START_MS - 100_000;
    let mut newest = (0, String::new());
    for v in 0..versions {
        // Sometimes two versions are one millisecond apart.
        t += 1 + rng.u64(..3) as i64 * 499;
        let email = format!("s{n}.v{v}@example.com");
        let mut c = upsert(
            &format!("msg_s{n}_v{v}"),
            &clerk_id,
            record(Some(&email), t),
        );
        if v == 0 {
            c.event_type = "user.created".into();
        }
        commands.push(c);
        newest = (t, email);
    }
    let deleted = rng.u64(..10) < 4;
    if deleted {
        commands.push(delete(&format!("msg_s{n}_del"), &clerk_id, None));
    }
    let distinct = commands.len();
    let mut deliveries = Vec::new();
    for c in commands {
        for _ in 0..1 + rng.u64(..3) {
            deliveries.push(c.clone());
        }
    }
    rng.shuffle(&mut deliveries);
    Schedule {
        clerk_id,
        deliveries,
        distinct,
        newest,
        deleted,
    }
}

#[test]
fn any_order_with_repeats_converges() {
    let seed = env_or("CONVERGENCE_SEED", 0x5EED_C1E4);
    let count = env_or("CONVERGENCE_SCHEDULES", 500);
    let mut rng = fastrand::Rng::with_seed(seed);
    let api = Api::new();
    let (mut deleted, mut delivered) = (0, 0);
    for n in 0..count {
        let s = schedule(&mut rng, n);
        let ctx = format!("seed {seed:#x}, schedule {n}");
        let mut seen = HashSet::new();
        for c in &s.deliveries {
            let (status, body) = api.send(c);
            let first = seen.insert(c.operation_id.clone());
            assert_eq!(status, if first { 200 } else { 409 }, "{ctx}: {body}");
        }
        assert_eq!(seen.len(), s.distinct);
        delivered += s.deliveries.len();

        let (status, u) = api.user(&s.clerk_id);
        assert_eq!(status, 200, "{ctx}");
        assert_eq!(u["deleted"], s.deleted, "{ctx}: {u}");
        // Deleted or not, the row holds the newest version, whatever the
        // order (a delete that came first included).
        let row = &u["user"];
        assert_eq!(row["sync_status"], "synced", "{ctx}: {u}");
        assert_eq!(row["clerk_updated_at"], ms(s.newest.0), "{ctx}");
        assert_eq!(row["email"], json!(s.newest.1), "{ctx}");
        assert_eq!(row["first_name"], format!("First{}", s.newest.0), "{ctx}");
        if s.deleted {
            deleted += 1;
            assert!(u["tombstone"].is_object(), "{ctx}");
            assert!(row["deleted_at"].is_string(), "{ctx}: {u}");
        } else {
            assert_eq!(row["deleted_at"], json!(null), "{ctx}");
        }
    }
    assert!(
        count < 20 || (deleted > 0 && deleted < count),
        "both kinds occur"
    );
    eprintln!("convergence: {count} schedules, {delivered} deliveries, seed {seed:#x}");
}

// ---- linking ------------------------------------------------------------

/// Addresses the simulated users and signups share: few, so they collide.
const EMAILS: [&str; 4] = ["a@x.com", "b@x.com", "c@x.com", "d@x.com"];

/// A signup of the simulated application.
#[derive(Debug, Clone)]
pub(crate) struct Signup {
    pub(crate) id: String,
    pub(crate) email: &'static str,
    pub(crate) link_by: &'static str,
}

/// A Clerk user as the simulation goes.
struct Simulated {
    event: Event,
    deleted: bool,
}

/// A Clerk history: the signups the application made first, and every
/// command Clerk's events map to, in Clerk's order.
pub(crate) struct History {
    pub(crate) signups: Vec<Signup>,
    pub(crate) commands: Vec<Command>,
}

/// The history of 1–3 signups and 1–4 Clerk users, 3–10 events. Clerk's
/// rules hold: no two live users share an address at any time, versions
/// grow, a deleted user sends nothing more.
pub(crate) fn history(rng: &mut fastrand::Rng, n: u64) -> History {
    let mut free: Vec<&'static str> = EMAILS.to_vec();
    rng.shuffle(&mut free);
    let signups: Vec<Signup> = (0..1 + rng.usize(..3))
        .map(|i| Signup {
            id: format!("app_{n}_{i}"),
            email: free[i],
            link_by: if rng.bool() { "email" } else { "external_id" },
        })
        .collect();
    let held = |users: &[Simulated], email: &str| {
        users.iter().any(|u| {
            !u.deleted
                && u.event
                    .email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    };
    // Clerk may spell an address in another case than the signup did.
    let spelled = |rng: &mut fastrand::Rng, email: &'static str| -> String {
        if rng.u8(..5) == 0 {
            email.to_uppercase()
        } else {
            email.to_owned()
        }
    };
    let mut users: Vec<Simulated> = Vec::new();
    let mut commands = Vec::new();
    // Clerk's clock starts before the signups (made at the API's clock,
    // just after START_MS): early users never claim a signup by email.
    let mut t = START_MS - 2_000 + rng.i64(0..1_500);
    let events = 3 + rng.usize(..8);
    let mut e = 0;
    while commands.len() < events && e < 50 {
        e += 1;
        t += 1 + rng.i64(0..400);
        let op = format!("msg_{n}_{e}");
        let live: Vec<usize> = (0..users.len()).filter(|&i| !users[i].deleted).collect();
        let create = users.len() < 4 && (live.is_empty() || rng.u8(..3) == 0);
        if create {
            let id = format!("user_{n}_{}", users.len());
            let email = *rng.choice(&EMAILS).unwrap();
            let email =
                (!held(&users, email) && rng.u8(..6) != 0).then(|| spelled(&mut *rng, email));
            let mut event = Event::created(&op, &id, t, email.as_deref());
            if rng.u8(..3) == 0 {
                event = event.unverified();
            }
            if rng.u8(..3) == 0 {
                event = event.external_id(Some(&rng.choice(&signups).unwrap().id));
            }
            commands.push(event.command());
            users.push(Simulated {
                event,
                deleted: false,
            });
            continue;
        }
        let Some(&i) = rng.choice(&live) else {
            break; // every user was created and deleted
        };
        let roll = rng.u8(..10);
        if roll == 0 {
            let with_external_id = rng.bool();
            commands.push(users[i].event.deleted(&op, t, with_external_id));
            users[i].deleted = true;
            continue;
        }
        let mut next = users[i].event.updated(&op, t);
        match roll {
            1..=3 => {
                let email = *rng.choice(&EMAILS).unwrap();
                // Another live user's address is not free; its own, in
                // another case, is.
                let taken = users.iter().enumerate().any(|(j, u)| {
                    j != i
                        && !u.deleted
                        && u.event
                            .email
                            .as_deref()
                            .is_some_and(|e| e.eq_ignore_ascii_case(email))
                });
                if !taken {
                    next = next.email(Some(&spelled(&mut *rng, email)));
                    if rng.bool() {
                        next = next.unverified();
                    }
                }
            }
            4 | 5 => next = next.verified(),
            6 => next = next.external_id(Some(&rng.choice(&signups).unwrap().id)),
            7 => next = next.email(None),
            _ => {} // a name change
        }
        // Now and then a second version at the same time (a tie).
        if rng.u8(..12) == 0 {
            let mut tie = next.updated(&format!("{op}_tie"), t).command();
            if let Some(user) = tie.user.as_mut() {
                user.first_name = Some(format!("tie {op}"));
            }
            commands.push(tie);
        }
        commands.push(next.command());
        users[i].event = next;
    }
    History { signups, commands }
}

/// Whether `clerk_id` may ever hold `s`: it claimed it by its rule
/// somewhere in the history.
fn claims(history: &History, s: &Signup, clerk_id: &str, signup_created: &str) -> bool {
    let of_user = history.commands.iter().filter(|c| c.clerk_id == clerk_id);
    if s.link_by == "external_id" {
        return of_user.clone().any(|c| {
            let ext = match (&c.user, &c.external_id) {
                (Some(u), _) => u.external_id.as_deref(),
                (None, e) => e.as_deref(),
            };
            ext == Some(s.id.as_str())
        });
    }
    let same = |e: &Option<String>| {
        e.as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(s.email))
    };
    let created_with = of_user.clone().any(|c| {
        c.event_type == "user.created"
            && c.user.as_ref().is_some_and(|u| {
                same(&u.email) && u.created_at.as_deref().is_some_and(|t| t >= signup_created)
            })
    });
    let verified = of_user
        .filter_map(|c| c.user.as_ref())
        .any(|u| same(&u.email) && u.email_verified);
    created_with && verified
}

/// What one delivery order did.
struct Delivered {
    table: Vec<Json>,
    /// When each signup was created (the API's clock).
    signups_created: Vec<String>,
    deliveries: usize,
    /// Answers 5xx from injected database faults (redelivered until taken).
    refused: usize,
    /// Deliveries after which a Clerk user's row held back its address.
    held_back: usize,
    /// Signups held by more than one Clerk user over time.
    handed_over: usize,
}

/// Delivers `order` into a fresh API with the history's signups, checking
/// every signup's link after every answer. With `chaos`, the database fails
/// now and then, before or after committing.
fn deliver(
    history: &History,
    order: &[Command],
    chaos: Option<fastrand::Rng>,
    ctx: &str,
) -> Delivered {
    let api = Api::new();
    let mut created = Vec::new();
    for s in &history.signups {
        let row = signup(&api, &s.id, s.email, s.link_by);
        created.push(row["created_at"].as_str().unwrap().to_owned());
    }
    let mut allowed: Vec<HashSet<String>> = vec![HashSet::new(); history.signups.len()];
    *api.db.chaos.borrow_mut() = chaos;
    let (mut refused, mut held_back) = (0, 0);
    let delivered = deliver_until_taken(&api, order, |api, c, status| {
        refused += usize::from(status >= 500);
        held_back += api
            .db
            .query(
                "SELECT 1 FROM users WHERE sync_status = 'failed' AND clerk_id IS NOT NULL
                   AND email IS NULL AND sync_error LIKE 'the email is used by%' LIMIT 1",
                &[],
            )
            .len();
        assert!(
            [200, 409, 500].contains(&status),
            "{ctx}: {} answered {status}",
            c.operation_id
        );
        for (i, s) in history.signups.iter().enumerate() {
            let linked = api.row(&s.id).unwrap()["clerk_id"].clone();
            if let Some(clerk_id) = linked.as_str() {
                if !allowed[i].contains(clerk_id) {
                    assert!(
                        claims(history, s, clerk_id, &created[i]),
                        "{ctx}: after {}, {} ({}) is linked to {clerk_id}, which never claimed it",
                        c.operation_id,
                        s.id,
                        s.link_by
                    );
                    allowed[i].insert(clerk_id.to_owned());
                }
            }
        }
    });
    let delivered = delivered.unwrap_or_else(|| {
        let ops: Vec<&str> = order.iter().map(|c| c.operation_id.as_str()).collect();
        panic!(
            "{ctx}: a command is refused for ever\nsignups {:?}\ncommands {:#?}\norder {ops:?}\ntable {:#?}\naudit {:#?}",
            history.signups,
            history.commands,
            table(&api),
            api.db.query("SELECT operation_id, clerk_id, outcome, error FROM sync_audit ORDER BY id", &[])
        )
    });
    let failed = api.db.query(
        "SELECT clerk_id, sync_error FROM users WHERE clerk_id IS NOT NULL AND sync_status <> 'synced'",
        &[],
    );
    assert!(failed.is_empty(), "{ctx}: all taken, yet {failed:?}");
    Delivered {
        table: table(&api),
        signups_created: created,
        deliveries: delivered,
        refused,
        held_back,
        handed_over: allowed.iter().filter(|a| a.len() > 1).count(),
    }
}

/// The table against the rules, computed from the history alone: each
/// Clerk user's row shows its newest version and is deleted if it was; a
/// signup with one claimant that claims nothing else is that user's; one
/// nobody claims is unlinked, `pending`, or `failed` with its address
/// cleared while another live row holds the address.
fn check_rules(history: &History, d: &Delivered, ctx: &str) {
    let rows_of = |clerk_id: &str| -> Vec<&Json> {
        d.table
            .iter()
            .filter(|r| r["key"].is_string() && r["clerk_id"] == clerk_id)
            .collect()
    };
    let clerk_ids: HashSet<&str> = history
        .commands
        .iter()
        .map(|c| c.clerk_id.as_str())
        .collect();
    for id in &clerk_ids {
        let upserts: Vec<&Command> = history
            .commands
            .iter()
            .filter(|c| c.clerk_id == *id && c.user.is_some())
            .collect();
        let deleted = history
            .commands
            .iter()
            .any(|c| c.clerk_id == *id && c.command == CommandKind::DeleteUser);
        let rows = rows_of(id);
        if upserts.is_empty() {
            assert!(rows.len() <= 1, "{ctx}: {id}: {rows:?}");
            continue;
        }
        assert_eq!(rows.len(), 1, "{ctx}: {id} has one row: {:#?}", d.table);
        let row = rows[0];
        assert_eq!(row["deleted"], json!(i64::from(deleted)), "{ctx}: {id}");
        let version = |c: &&Command| c.user.as_ref().unwrap().updated_at.clone();
        let newest = upserts.iter().map(version).max().unwrap();
        let newest: Vec<&&Command> = upserts.iter().filter(|c| version(c) == newest).collect();
        if let [only] = newest.as_slice() {
            let user = only.user.as_ref().unwrap();
            assert_eq!(row["first_name"], json!(user.first_name), "{ctx}: {id}");
            assert_eq!(row["email"], json!(user.email), "{ctx}: {id}");
        }
    }
    for (i, s) in history.signups.iter().enumerate() {
        let created = &d.signups_created[i];
        let claimants: Vec<&str> = clerk_ids
            .iter()
            .copied()
            .filter(|u| claims(history, s, u, created))
            .collect();
        let row = d
            .table
            .iter()
            .find(|r| r["key"] == format!("signup:{}", s.id))
            .unwrap();
        match claimants.as_slice() {
            [] => {
                assert_eq!(row["clerk_id"], Json::Null, "{ctx}: {}", s.id);
                assert_eq!(row["deleted"], json!(0), "{ctx}: {}", s.id);
                let held = d.table.iter().any(|o| {
                    o["key"] != row["key"]
                        && o["deleted"] == json!(0)
                        && o["email"]
                            .as_str()
                            .is_some_and(|e| e.eq_ignore_ascii_case(s.email))
                });
                let expected = if held {
                    (json!("failed"), Json::Null)
                } else {
                    (json!("pending"), json!(s.email))
                };
                assert_eq!(
                    (row["sync_status"].clone(), row["email"].clone()),
                    expected,
                    "{ctx}: {}",
                    s.id
                );
            }
            [only] => {
                let elsewhere = history
                    .signups
                    .iter()
                    .enumerate()
                    .any(|(j, o)| j != i && claims(history, o, only, &d.signups_created[j]));
                if !elsewhere {
                    assert_eq!(row["clerk_id"], json!(only), "{ctx}: {} is {only}'s", s.id);
                }
            }
            _ => {}
        }
    }
}

/// Each command 1–3 times, shuffled.
pub(crate) fn with_repeats(rng: &mut fastrand::Rng, commands: &[Command]) -> Vec<Command> {
    let mut out = Vec::new();
    for c in commands {
        for _ in 0..1 + rng.usize(..3) {
            out.push(c.clone());
        }
    }
    rng.shuffle(&mut out);
    out
}

#[test]
fn linking_schedules_end_alike_in_every_order() {
    let seed = env_or("CONVERGENCE_SEED", 0x114B_5EED);
    let count = env_or("CONVERGENCE_SCHEDULES", 1_000);
    let orders = env_or("CONVERGENCE_ORDERS", 3);
    let mut rng = fastrand::Rng::with_seed(seed);
    let started = std::time::Instant::now();
    let (mut delivered, mut linked, mut conflicts, mut deletes) = (0, 0, 0, 0);
    let (mut refused, mut handed_over, mut held_back) = (0, 0, 0);
    for n in 0..count {
        let history = history(&mut rng, n);
        let ctx = format!("seed {seed:#x}, schedule {n}");
        let first = deliver(
            &history,
            &history.commands,
            None,
            &format!("{ctx}, Clerk's order"),
        );
        check_rules(&history, &first, &ctx);
        delivered += first.deliveries;
        let reference = first.table;
        for k in 0..orders {
            let order = with_repeats(&mut rng, &history.commands);
            let ctx = format!("{ctx}, order {k}");
            // Every other order meets database faults.
            let chaos = (k % 2 == 1).then(|| fastrand::Rng::with_seed(rng.u64(..)));
            let d = deliver(&history, &order, chaos, &ctx);
            delivered += d.deliveries;
            refused += d.refused;
            handed_over += d.handed_over;
            held_back += d.held_back;
            let table = d.table;
            if table != reference {
                let ops: Vec<&str> = order.iter().map(|c| c.operation_id.as_str()).collect();
                panic!(
                    "{ctx}: the table differs\nsignups {:?}\ncommands {:#?}\norder {ops:?}\nClerk's order {reference:#?}\nthis order {table:#?}",
                    history.signups, history.commands
                );
            }
        }
        let signup_rows = reference
            .iter()
            .filter(|r| r["key"].as_str().is_some_and(|k| k.starts_with("signup:")));
        for r in signup_rows {
            if r["clerk_id"].is_string() {
                linked += 1;
            } else if r["sync_status"] == "failed" {
                conflicts += 1;
            }
        }
        deletes += history
            .commands
            .iter()
            .filter(|c| c.command == CommandKind::DeleteUser)
            .count();
    }
    if count >= 100 {
        assert!(
            linked > count / 10
                && conflicts > count / 20
                && deletes > count as usize / 10
                && refused > 0
                && handed_over > 0
                && held_back > 0,
            "the schedules cover links ({linked}), signup conflicts ({conflicts}), deletes \
             ({deletes}), database faults ({refused}), signups handed over ({handed_over}) and \
             addresses held back ({held_back})"
        );
    }
    eprintln!(
        "linking convergence: {count} schedules x {} orders, {delivered} deliveries ({refused} \
         5xx from injected faults, then taken), {linked} signups linked, {conflicts} in \
         conflict, {handed_over} handed over to an earlier claimant, {held_back} times an \
         address held back, {deletes} deletes, {:.1}s, seed {seed:#x}",
        orders + 1,
        started.elapsed().as_secs_f64()
    );
}
