//! One run at a time: the state the Durable Object keeps (the current or
//! latest run, and the statuses of past runs) and the admin decisions on it.
//! No I/O and no clock: the glue restores it from storage, calls it, and
//! stores what [`Coordinator::run_json`] and [`Coordinator::history_json`]
//! return.

use clerk_sync_contract::UnixMillis;
use clerk_sync_resync::{Run, RunConfig, RunId, Scope, StateError};
use serde_json::{json, Value};

use crate::admin::AdminError;

/// Past runs kept for `GET /admin/resync/runs` and `GET /admin/resync/{id}`.
pub const HISTORY_LEN: usize = 20;

#[derive(Debug, Default)]
pub struct Coordinator {
    /// The running run, or the latest one.
    run: Option<Run>,
    /// Statuses of finished runs, newest first.
    history: Vec<Value>,
    /// The bytes [`Coordinator::changes`] last handed out to be stored.
    stored: Stored,
}

#[derive(Debug, Default)]
struct Stored {
    run: Option<Vec<u8>>,
    history: Option<Vec<u8>>,
}

impl Coordinator {
    /// From the stored bytes. An unreadable run (another layout version, a
    /// corrupted value) is dropped and its error returned for the log: a run
    /// that cannot be resumed must not block the next one.
    pub fn restore(run: Option<&[u8]>, history: Option<&[u8]>) -> (Self, Option<StateError>) {
        let (run, error) = match run.map(Run::from_json) {
            None => (None, None),
            Some(Ok(run)) => (Some(run), None),
            Some(Err(e)) => (None, Some(e)),
        };
        let history = history
            .and_then(|h| serde_json::from_slice::<Vec<Value>>(h).ok())
            .unwrap_or_default();
        (
            Self {
                run,
                history,
                stored: Stored::default(),
            },
            error,
        )
    }

    pub fn run_json(&self) -> Option<Vec<u8>> {
        self.run.as_ref().map(Run::to_json)
    }

    pub fn history_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.history).expect("values serialize")
    }

    /// What to store now: the run's bytes and the history's, each only
    /// when it differs from what this handed out last (most answers change
    /// nothing that is persisted: a write of the same bytes is skipped).
    /// When storing fails, [`Coordinator::forget_stored`].
    pub fn changes(&mut self) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let changed = |now: Vec<u8>, last: &mut Option<Vec<u8>>| {
            (last.as_ref() != Some(&now)).then(|| {
                *last = Some(now.clone());
                now
            })
        };
        let run = self
            .run_json()
            .and_then(|now| changed(now, &mut self.stored.run));
        let history = changed(self.history_json(), &mut self.stored.history);
        (run, history)
    }

    /// Storing what [`Coordinator::changes`] handed out failed: everything
    /// is handed out again next time.
    pub fn forget_stored(&mut self) {
        self.stored = Stored::default();
    }

    pub fn run_mut(&mut self) -> Option<&mut Run> {
        self.run.as_mut()
    }

    /// The running run's id.
    pub fn running(&self) -> Option<&RunId> {
        self.run
            .as_ref()
            .filter(|r| r.is_running())
            .map(Run::run_id)
    }

    /// Starts a run, unless one is running (409 with its id).
    pub fn start(
        &mut self,
        scope: Scope,
        config: RunConfig,
        now: UnixMillis,
        random: u64,
    ) -> Result<RunId, AdminError> {
        if let Some(id) = self.running() {
            return Err(AdminError::Running(id.clone()));
        }
        self.archive();
        let id = RunId::generate(now, random);
        self.run = Some(Run::new(id.clone(), scope, config, now));
        Ok(id)
    }

    /// `GET /admin/resync`: the running or latest run.
    pub fn latest(&self) -> Result<Value, AdminError> {
        self.run.as_ref().map(status).ok_or(AdminError::RunNotFound)
    }

    /// `GET /admin/resync/{id}`.
    pub fn get(&self, id: &RunId) -> Result<Value, AdminError> {
        match &self.run {
            Some(run) if run.run_id() == id => Ok(status(run)),
            _ => self
                .history
                .iter()
                .find(|s| s["run_id"] == json!(id.as_str()))
                .cloned()
                .ok_or(AdminError::RunNotFound),
        }
    }

    /// `POST /admin/resync/{id}/cancel`: the run's status once stopped.
    pub fn cancel(&mut self, id: &RunId, now: UnixMillis) -> Result<Value, AdminError> {
        match &mut self.run {
            Some(run) if run.run_id() == id => {
                if !run.cancel(now) {
                    return Err(AdminError::NotRunning);
                }
                self.archive();
                self.latest()
            }
            _ => match self.get(id) {
                Ok(_) => Err(AdminError::NotRunning),
                Err(e) => Err(e),
            },
        }
    }

    /// `GET /admin/resync/runs`: the running run (if any) then past runs, newest first.
    pub fn runs(&self) -> Value {
        let mut runs: Vec<Value> = self
            .run
            .iter()
            .filter(|r| r.is_running())
            .map(status)
            .collect();
        runs.extend(self.history.iter().cloned());
        json!({"ok": true, "runs": runs})
    }

    /// Copies a finished run's status into the history, once. True when
    /// the history changed (so it is stored again).
    pub fn archive(&mut self) -> bool {
        let Some(run) = self.run.as_ref().filter(|r| !r.is_running()) else {
            return false;
        };
        let id = json!(run.run_id().as_str());
        if self.history.first().is_some_and(|s| s["run_id"] == id) {
            return false;
        }
        self.history.insert(0, status(run));
        self.history.truncate(HISTORY_LEN);
        true
    }
}

/// A run's status as the admin routes answer it.
pub fn status(run: &Run) -> Value {
    let mut value = serde_json::to_value(run.status()).expect("a status serializes");
    value["ok"] = json!(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: UnixMillis = UnixMillis(1_700_000_000_000);

    fn started(c: &mut Coordinator, scope: Scope, random: u64) -> RunId {
        c.start(scope, RunConfig::default(), T, random).unwrap()
    }

    #[test]
    fn one_run_at_a_time_and_the_latest_is_answered() {
        let mut c = Coordinator::default();
        assert_eq!(c.latest(), Err(AdminError::RunNotFound));
        let a = started(&mut c, Scope::All, 1);
        assert_eq!(c.running(), Some(&a));
        assert_eq!(
            c.start(Scope::Failed, RunConfig::default(), T, 2),
            Err(AdminError::Running(a.clone()))
        );
        let latest = c.latest().unwrap();
        assert_eq!(latest["run_id"], json!(a.as_str()));
        assert_eq!(latest["state"], json!("running"));
        assert_eq!(latest["scope"], json!("all"));
        assert_eq!(c.get(&a).unwrap(), latest);
        assert_eq!(c.runs()["runs"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn cancel_stops_it_once_and_it_moves_to_the_history() {
        let mut c = Coordinator::default();
        let a = started(&mut c, Scope::Pending, 1);
        let stopped = c.cancel(&a, T.plus_millis(5)).unwrap();
        assert_eq!(stopped["state"], json!("cancelled"));
        assert_eq!(c.cancel(&a, T), Err(AdminError::NotRunning));
        assert_eq!(c.running(), None);
        let other = RunId::new("rs_0_0000000000000009").unwrap();
        assert_eq!(c.cancel(&other, T), Err(AdminError::RunNotFound));

        let b = started(&mut c, Scope::All, 2);
        assert_ne!(a, b);
        assert_eq!(c.get(&a).unwrap()["state"], json!("cancelled"));
        assert_eq!(c.cancel(&a, T), Err(AdminError::NotRunning));
        let runs = c.runs()["runs"].as_array().unwrap().clone();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["run_id"], json!(b.as_str()));
        assert_eq!(runs[1]["run_id"], json!(a.as_str()));
    }

    #[test]
    fn it_survives_storage_and_the_history_is_bounded() {
        let mut c = Coordinator::default();
        for i in 0..(HISTORY_LEN as u64 + 5) {
            let id = started(&mut c, Scope::Failed, i);
            c.cancel(&id, T).unwrap();
            assert!(!c.archive(), "archived once");
        }
        let (back, err) = Coordinator::restore(c.run_json().as_deref(), Some(&c.history_json()));
        assert!(err.is_none());
        assert_eq!(back.history.len(), HISTORY_LEN);
        assert_eq!(back.latest(), c.latest());
        assert_eq!(back.runs(), c.runs());
    }

    #[test]
    fn only_what_changed_is_stored_again() {
        let mut c = Coordinator::default();
        let (run, history) = c.changes();
        assert_eq!((run, history.as_deref()), (None, Some(&b"[]"[..])));
        assert_eq!(c.changes(), (None, None));
        let a = started(&mut c, Scope::All, 1);
        let (run, history) = c.changes();
        assert!(run.is_some() && history.is_none());
        assert_eq!(c.changes(), (None, None), "nothing changed");
        let action = c.run_mut().unwrap().poll(T);
        assert!(matches!(action, clerk_sync_resync::Action::Clerk { .. }));
        let (run, _) = c.changes();
        assert_eq!(run, c.run_json(), "a request is in the rate window now");
        c.forget_stored();
        assert_eq!(c.changes(), (c.run_json(), Some(c.history_json())));
        c.cancel(&a, T).unwrap();
        let (run, history) = c.changes();
        assert!(run.is_some() && history.is_some());
    }

    #[test]
    fn an_unreadable_run_does_not_block_the_next() {
        let (mut c, err) = Coordinator::restore(Some(b"{\"version\":99}"), Some(b"not json"));
        assert!(err.is_some());
        assert_eq!(c.running(), None);
        started(&mut c, Scope::All, 7);
        assert!(c.running().is_some());
    }
}
