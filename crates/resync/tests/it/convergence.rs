//! Seeded properties over whole runs against the simulated Clerk and main
//! API: convergence from drift, the rate limit, Retry-After, restarts and
//! changes in Clerk mid-run. `CLERK_SYNC_RESYNC_SEED=<n>` replays one seed.

use clerk_sync_contract::UnixMillis;
use clerk_sync_resync::{Run, RunConfig, RunId, RunState, Scope};

use crate::sim::{ApiFaults, Chaos, ClerkFaults, SimApi, SimClerk, SimRow, SimUser, World};

const MAX_STEPS: u64 = 400_000;

/// Seeds 1..=n; `CLERK_SYNC_RESYNC_SEED=<n>` replays one,
/// `CLERK_SYNC_RESYNC_SEEDS=<n>` runs that many instead (a soak).
fn seeds(n: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("CLERK_SYNC_RESYNC_SEED") {
        return vec![s.parse().expect("a seed is a number")];
    }
    let n = std::env::var("CLERK_SYNC_RESYNC_SEEDS").map_or(n, |s| s.parse().expect("a count"));
    (1..=n).collect()
}

fn random_config(rng: &mut fastrand::Rng) -> RunConfig {
    RunConfig {
        rate_limit_per_10s: [1, 3, 10, 100][rng.usize(..4)],
        page_size: [1, 7, 50, 500][rng.usize(..4)],
        lookup_size: [1, 3, 10, 100][rng.usize(..4)],
        ..RunConfig::default()
    }
}

/// Clerk's users, and a table that is wrong in every way: users missing,
/// rows older than Clerk, `failed` rows, `pending` rows whose email or
/// external id Clerk has, rows live in the table but gone from Clerk, a
/// tombstoned user, pending rows nobody matches.
struct Drift {
    users: Vec<SimUser>,
    rows: Vec<SimRow>,
    tombstones: Vec<&'static str>,
    /// Rows with a Clerk id that Clerk does not have (live in the table).
    gone: usize,
    bad: usize,
    unmatched_pending: usize,
}

fn drift(rng: &mut fastrand::Rng, max_users: usize) -> Drift {
    let n = rng.usize(0..=max_users);
    let base = 1_700_000_000_000;
    let mut users = Vec::new();
    let mut rows = Vec::new();
    let mut bad = 0;
    let mut unmatched_pending = 0;
    for i in 0..n {
        // Some share a created_at: the cursor is an id, not a time.
        let created = base + (i as i64 / 3) * 1_000;
        let mut u = SimUser::new(&format!("user_{i:05}"), created);
        u.updated_at = created + rng.i64(0..1_000_000);
        if rng.u8(0..4) == 0 {
            u.external_id = Some(format!("ext-{i}"));
        }
        if rng.u8(0..50) == 0 {
            u.bad_time = true;
            bad += 1;
        }
        match rng.u8(0..10) {
            0..=2 => {} // missing
            3..=5 => rows.push(SimRow::linked(
                &u.id,
                &u.email,
                &u.first_name,
                u.updated_at,
                "synced",
            )),
            6 | 7 => rows.push(SimRow::linked(
                &u.id,
                "old@example.com",
                "Old",
                u.updated_at - 1,
                "synced",
            )),
            8 => rows.push(SimRow::linked(
                &u.id,
                &u.email,
                "Old",
                u.created_at - 1,
                "failed",
            )),
            _ => {
                if u.bad_time {
                    // nothing could link it: keep the table simple
                } else if let Some(x) = &u.external_id {
                    rows.push(SimRow::pending(i, None, Some(x)));
                } else {
                    rows.push(SimRow::pending(i, Some(&u.email.to_uppercase()), None));
                }
            }
        }
        users.push(u);
    }
    let gone = rng.usize(0..20);
    for j in 0..gone {
        let status = if j % 3 == 0 { "failed" } else { "synced" };
        rows.push(SimRow::linked(
            &format!("user_gone{j:03}"),
            &format!("gone{j}@example.com"),
            "Gone",
            base,
            status,
        ));
    }
    for j in 0..rng.usize(0..5) {
        rows.push(SimRow::pending(
            100_000 + j,
            Some(&format!("nobody{j}@example.com")),
            None,
        ));
        unmatched_pending += 1;
    }
    let mut tomb = SimRow::linked("user_tomb", "tomb@example.com", "Tomb", base, "synced");
    tomb.deleted = true;
    rows.push(tomb);
    Drift {
        users,
        rows,
        tombstones: vec!["user_tomb"],
        gone,
        bad,
        unmatched_pending,
    }
}

fn run(id: &str, scope: Scope, config: RunConfig, now: i64) -> Run {
    Run::new(RunId::new(id).unwrap(), scope, config, UnixMillis(now))
}

fn rough_clerk(rng: &mut fastrand::Rng, config: &RunConfig) -> ClerkFaults {
    ClerkFaults {
        // Sometimes Clerk's own limit is lower than the configured one.
        limit_per_10s: if rng.bool() {
            config.rate_limit_per_10s as usize
        } else {
            rng.usize(1..=config.rate_limit_per_10s as usize)
        },
        // At 10 % a request fails its 8 tries about once in 10^8.
        p_fault: [0.0, 0.05, 0.1][rng.usize(..3)],
        p_429: [0.0, 0.05, 0.2][rng.usize(..3)],
        strict_cursor: rng.bool(),
    }
}

fn rough_api(rng: &mut fastrand::Rng) -> ApiFaults {
    ApiFaults {
        p_fault: [0.0, 0.05, 0.1][rng.usize(..3)],
        p_lost_answer: [0.0, 0.1][rng.usize(..2)],
        cursor_on_full_page: rng.bool(),
    }
}

/// The run completed, never exceeded its Clerk rate limit, and counted every
/// command it sent exactly once.
fn assert_completed_within_limits(
    world: &World,
    ran: &crate::sim::Ran,
    config: &RunConfig,
    seed: u64,
) {
    assert_eq!(
        ran.run.state(),
        RunState::Completed,
        "seed {seed}: {:?}",
        ran.run.status()
    );
    world.assert_rate_limit(config.rate_limit_per_10s);
    assert_counts_add_up(&ran.run);
}

fn assert_counts_add_up(run: &Run) {
    let c = run.counters();
    assert_eq!(
        c.applied + c.duplicates + c.stale + c.ignored_deleted,
        c.upserts_sent + c.deletes_sent,
        "every command sent is counted once: {c:?}"
    );
}

fn assert_logs(ran: &crate::sim::Ran) {
    let pages = ran.logs.iter().filter(|l| l.event == "resync_page").count() as u64;
    assert!(pages >= ran.run.status().pages, "a page log per page");
    let last = ran.logs.last().expect("an end record");
    assert_eq!(last.event, "resync_end");
    assert_eq!(last.state, ran.run.state());
    let text = serde_json::to_string(&ran.logs).unwrap();
    assert!(!text.contains('@'), "no email in the logs");
    assert!(!text.contains("First "), "no name in the logs");
}

/// A static Clerk, faults and restarts anywhere: the run converges, every
/// page is committed exactly once (each good user upserted once in the
/// counters), and what the main API saw twice was a duplicate of the same
/// command.
#[test]
fn full_run_converges_from_drift_with_faults_and_restarts() {
    // Sweep rows pages read beside a lookup, over all seeds: the path is driven.
    let mut rows_read_ahead = 0;
    for seed in seeds(100) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let config = random_config(&mut rng);
        let d = drift(&mut rng, 200);
        let clerk = SimClerk::new(d.users.clone(), rough_clerk(&mut rng, &config));
        let api = SimApi::new(d.rows, &d.tombstones, rough_api(&mut rng));
        let mut world = World::new(clerk, api, seed);
        let chaos = Chaos {
            p_restart: [0.0, 0.02, 0.1][rng.usize(..3)],
            ..Chaos::calm()
        };
        let r = run(&format!("run{seed}"), Scope::All, config.clone(), world.now);
        let ran = world.drive(r, &chaos, MAX_STEPS);
        let status = ran.run.status();
        assert_eq!(
            ran.run.state(),
            RunState::Completed,
            "seed {seed}: {status:?}"
        );
        world.assert_converged();
        world.assert_rate_limit(config.rate_limit_per_10s);
        assert_counts_add_up(&ran.run);
        assert_logs(&ran);
        let c = ran.run.counters();
        let n = d.users.len() as u64;
        assert_eq!(c.clerk_users_total, Some(n), "seed {seed}");
        assert_eq!(c.clerk_users_seen, n, "seed {seed}: each page counted once");
        assert_eq!(
            c.upserts_sent,
            n - d.bad as u64,
            "seed {seed}: each page committed once"
        );
        assert_eq!(c.rejected, d.bad as u64, "seed {seed}");
        // A sweep page redone after a restart no longer lists the rows its
        // first batch deleted: deleted (converged), but counted once or not at all.
        if world.restarts == 0 {
            assert_eq!(c.deletes_sent, d.gone as u64, "seed {seed}");
        } else {
            assert!(c.deletes_sent <= d.gone as u64, "seed {seed}");
        }
        assert_eq!(
            status.rejected_ids.len(),
            d.bad.min(clerk_sync_resync::status::MAX_REJECTED_IDS)
        );
        assert!(status
            .rejected_ids
            .iter()
            .all(|r| r.reason == "time_out_of_range" && r.clerk_id.is_some()));

        // A later run is not a duplicate of this one: it applies again
        // (same versions), deletes nothing, and converges just the same.
        world.clerk.faults = ClerkFaults::none();
        world.api.faults = ApiFaults::none();
        let again = run(
            &format!("later{seed}"),
            Scope::All,
            config.clone(),
            world.now,
        );
        let ran = world.drive(again, &Chaos::calm(), MAX_STEPS);
        assert_eq!(ran.run.state(), RunState::Completed);
        let c = ran.run.counters();
        assert_eq!((c.duplicates, c.deletes_sent), (0, 0), "seed {seed}");
        world.assert_converged();
        rows_read_ahead += world.rows_read_ahead;
    }
    assert!(rows_read_ahead > 0, "no sweep rows page was read ahead");
}

/// Clerk changes while the run pages (updates, sign-ups, deletions, each
/// with its webhook arriving some time later): once the webhooks are in,
/// the table equals Clerk. The run never sent a version Clerk did not hold
/// nor deleted a user Clerk has (checked on every command by the stand-in).
#[test]
fn changes_in_clerk_mid_run_still_converge() {
    let mut rows_read_ahead = 0;
    for seed in seeds(100) {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0xC1E4);
        let config = random_config(&mut rng);
        let d = drift(&mut rng, 200);
        let clerk = SimClerk::new(d.users, rough_clerk(&mut rng, &config));
        let api = SimApi::new(d.rows, &d.tombstones, rough_api(&mut rng));
        let mut world = World::new(clerk, api, seed);
        let chaos = Chaos {
            p_restart: 0.03,
            p_mutation: [0.02, 0.1, 0.3][rng.usize(..3)],
            ..Chaos::calm()
        };
        let r = run(&format!("mid{seed}"), Scope::All, config.clone(), world.now);
        let ran = world.drive(r, &chaos, MAX_STEPS);
        assert_completed_within_limits(&world, &ran, &config, seed);
        world.assert_converged();
        rows_read_ahead += world.rows_read_ahead;
    }
    assert!(rows_read_ahead > 0, "no sweep rows page was read ahead");
}

/// Clerk answers 429 often, with and without Retry-After: the run finishes,
/// never exceeds its limit in any 10 s window, and never asks before a
/// Retry-After expired.
#[test]
fn rate_limit_and_retry_after_hold_under_heavy_429s() {
    let mut answered_429 = 0;
    for seed in seeds(60) {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x429);
        let mut config = random_config(&mut rng);
        config.page_size = [7, 50][rng.usize(..2)];
        let d = drift(&mut rng, 200);
        let faults = ClerkFaults {
            limit_per_10s: rng.usize(1..=config.rate_limit_per_10s as usize),
            p_fault: 0.05,
            p_429: 0.4,
            strict_cursor: true,
        };
        let clerk = SimClerk::new(d.users, faults);
        let api = SimApi::new(d.rows, &d.tombstones, ApiFaults::none());
        let mut world = World::new(clerk, api, seed);
        let r = run(&format!("rl{seed}"), Scope::All, config.clone(), world.now);
        let chaos = Chaos {
            p_restart: 0.05,
            ..Chaos::calm()
        };
        let ran = world.drive(r, &chaos, MAX_STEPS);
        assert_eq!(
            ran.run.state(),
            RunState::Completed,
            "seed {seed}: {:?}",
            ran.run.status()
        );
        answered_429 += world.clerk.answered_429;
        world.assert_rate_limit(config.rate_limit_per_10s);
        world.assert_converged();
        // Every request performed was counted, restarts included.
        assert_eq!(
            ran.run.counters().clerk_requests,
            world.clerk.requests.len() as u64
        );
    }
    assert!(answered_429 > 0, "the stand-in did answer 429");
}

/// `users`: the given ids that Clerk has are upserted with their latest
/// data; those it does not have are deleted (tombstoned); nothing else moves.
#[test]
fn users_scope_upserts_what_clerk_has_and_deletes_the_rest() {
    for seed in seeds(80) {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x05E7);
        let config = random_config(&mut rng);
        let d = drift(&mut rng, 150);
        let mut ids: Vec<String> = d
            .users
            .iter()
            .filter(|_| rng.bool())
            .map(|u| u.id.clone())
            .collect();
        ids.extend((0..rng.usize(0..4)).map(|j| format!("user_gone{j:03}")));
        ids.extend((0..rng.usize(0..3)).map(|j| format!("user_never{j}")));
        if ids.is_empty() {
            ids.push("user_never".into());
        }
        rng.shuffle(&mut ids);
        let clerk = SimClerk::new(d.users.clone(), rough_clerk(&mut rng, &config));
        let api = SimApi::new(d.rows.clone(), &d.tombstones, rough_api(&mut rng));
        // Rows of other users; a pending row may be linked to a user in scope.
        let in_scope: Vec<&SimUser> = d.users.iter().filter(|u| ids.contains(&u.id)).collect();
        let untouched: Vec<SimRow> = d
            .rows
            .iter()
            .filter(|r| match &r.clerk_id {
                Some(id) => !ids.contains(id),
                None => !in_scope.iter().any(|u| {
                    (r.external_id.is_some() && r.external_id == u.external_id)
                        || r.email.as_deref().map(str::to_ascii_lowercase) == Some(u.email.clone())
                }),
            })
            .cloned()
            .collect();
        let mut world = World::new(clerk, api, seed);
        let chaos = Chaos {
            p_restart: 0.05,
            ..Chaos::calm()
        };
        let scope = Scope::Users {
            clerk_ids: ids.clone(),
        };
        let ran = world.drive(
            run("u", scope, config.clone(), world.now),
            &chaos,
            MAX_STEPS,
        );
        assert_completed_within_limits(&world, &ran, &config, seed);
        assert!(
            world.api.violations.is_empty(),
            "{:?}",
            world.api.violations
        );
        for id in &ids {
            match world.clerk.get(id) {
                Some(u) if !u.bad_time => {
                    let row = world.api.row(id).unwrap();
                    assert_eq!(
                        row.clerk_updated_at,
                        clerk_sync_contract::time::format_millis(u.updated_at)
                    );
                    assert_eq!(row.sync_status, "synced");
                }
                Some(_) => {}
                None => assert!(world.api.tombstones.contains(id), "{id} tombstoned"),
            }
        }
        for r in untouched {
            assert!(
                world.api.rows.contains(&r),
                "seed {seed}: a row outside the scope changed: {r:?}"
            );
        }
        assert_eq!(ran.run.counters().clerk_users_total, Some(ids.len() as u64));
    }
}

/// `failed` and `pending`: failed rows heal from Clerk; pending rows whose
/// external id or email Clerk has are linked; the others are counted and
/// left as they are; nothing is deleted.
#[test]
fn failed_and_pending_scopes_heal_what_clerk_knows() {
    for seed in seeds(80) {
        for scope in [Scope::Failed, Scope::Pending] {
            let mut rng = fastrand::Rng::with_seed(seed ^ 0xFA11);
            let config = random_config(&mut rng);
            let d = drift(&mut rng, 150);
            let clerk = SimClerk::new(d.users.clone(), rough_clerk(&mut rng, &config));
            let api = SimApi::new(d.rows.clone(), &d.tombstones, rough_api(&mut rng));
            let mut world = World::new(clerk, api, seed);
            let chaos = Chaos {
                p_restart: 0.05,
                ..Chaos::calm()
            };
            let status = if scope == Scope::Failed {
                "failed"
            } else {
                "pending"
            };
            let listed = d
                .rows
                .iter()
                .filter(|r| !r.deleted && r.sync_status == status)
                .count();
            let ran = world.drive(
                run("s", scope.clone(), config.clone(), world.now),
                &chaos,
                MAX_STEPS,
            );
            assert_completed_within_limits(&world, &ran, &config, seed);
            assert!(
                world.api.violations.is_empty(),
                "{:?}",
                world.api.violations
            );
            let c = ran.run.counters();
            assert_eq!(c.deletes_sent, 0);
            // Rows listed by the pages done. A page redone after a restart
            // may find its rows already healed by the batch that was sent
            // before the restart: they are fixed, but nobody counts them.
            let total = c.clerk_users_total.unwrap();
            if world.restarts == 0 {
                assert_eq!(total, listed as u64, "seed {seed}");
            } else {
                assert!(total <= listed as u64, "seed {seed}");
            }
            for u in world.clerk.users.iter().filter(|u| !u.bad_time) {
                let was = d.rows.iter().find(|r| {
                    r.clerk_id.as_deref() == Some(&u.id)
                        || (r.clerk_id.is_none()
                            && (r.external_id.is_some() && r.external_id == u.external_id
                                || r.email.as_deref().map(str::to_ascii_lowercase)
                                    == Some(u.email.clone())))
                });
                if let Some(was) = was.filter(|r| r.sync_status == status) {
                    let row = world
                        .api
                        .row(&u.id)
                        .unwrap_or_else(|| panic!("seed {seed}: {} not linked", u.id));
                    assert_eq!(row.sync_status, "synced");
                    assert_eq!(row.first_name.as_deref(), Some(u.first_name.as_str()));
                    let _ = was;
                }
            }
            let still = world
                .api
                .rows
                .iter()
                .filter(|r| !r.deleted && r.sync_status == status)
                .count() as u64;
            if scope == Scope::Failed {
                // What stays failed: rows Clerk lacks, and rows of users it cannot map.
                assert_eq!(c.failed_unmatched + c.rejected, still, "seed {seed}");
            } else {
                assert_eq!(
                    c.pending_unmatched, d.unmatched_pending as u64,
                    "seed {seed}"
                );
                assert_eq!(still, d.unmatched_pending as u64, "seed {seed}");
            }
        }
    }
}
