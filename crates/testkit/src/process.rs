//! The one way the suites start a server (workerd, `wrangler dev` of the
//! main API, a node stand-in): a child in a process group of its own, its
//! output appended to a log file, readiness awaited by polling a condition
//! (never a fixed sleep), and stopped with its whole group, also when the
//! test process dies without running any `Drop` (a panic that aborts, a
//! `static` that is never dropped, a killed `cargo test`): a watchdog, in a
//! process group of its own, then stops the group and removes the
//! directory it was given.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::tempdir::TempDir;

/// Polls (twice a second) while the test process (`parent`) and the child's
/// group are alive. When the group is gone first, the test stopped it:
/// nothing to do. When the parent is gone: stop the group (TERM, then KILL)
/// and remove `dir`, if one was given.
const WATCHDOG: &str = r#"
parent=$1; group=$2; dir=$3
while kill -0 "$parent" 2>/dev/null && kill -0 -- "-$group" 2>/dev/null; do sleep 0.5; done
kill -0 "$parent" 2>/dev/null && exit 0
kill -TERM -- "-$group" 2>/dev/null
sleep 2
kill -KILL -- "-$group" 2>/dev/null
[ -z "$dir" ] || rm -rf "$dir"
"#;

/// How long a stopped group has to exit on TERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A child process in its own process group, stopped with its group on drop.
pub struct Process {
    name: String,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Process {
    /// Starts `command` (its stdin closed, stdout and stderr appended to
    /// `log`) in a process group of its own, with a watchdog that stops the
    /// group, and removes `cleanup` if given, once the test process is gone.
    pub fn spawn(name: &str, mut command: Command, log: &Path, cleanup: Option<&Path>) -> Self {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{name}: log {}: {e}", log.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({command:?}): {e}"));
        let watchdog = Command::new("bash")
            .args(["-c", WATCHDOG, "watchdog"])
            .arg(std::process::id().to_string())
            .arg(child.id().to_string())
            .arg(cleanup.map(Path::as_os_str).unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: neither a Ctrl-C to `cargo test` nor stopping
            // the child's group reaches it.
            .process_group(0)
            .spawn()
            .ok();
        Process {
            name: name.to_owned(),
            child,
            watchdog,
            log: log.to_owned(),
            status: None,
        }
    }

    /// Polls `ready` until it holds; panics, with the log, if the process
    /// exits first or `timeout` passes. Returns how long it took.
    pub fn wait_ready(&mut self, timeout: Duration, ready: impl FnMut() -> bool) -> Duration {
        let start = Instant::now();
        let became_ready = crate::wait_until(timeout, ready_or_exited(self, ready));
        self.ready_or_panic(became_ready, start)
    }

    /// Like [`Process::wait_ready`], but `false` instead of a panic when the
    /// process exited because an address it was given was in use: a port
    /// from [`crate::ports::free_port`] is free only until another process
    /// binds it, so the caller starts it again on new ports.
    pub fn wait_ready_unless_port_taken(
        &mut self,
        timeout: Duration,
        ready: impl FnMut() -> bool,
    ) -> bool {
        let start = Instant::now();
        let became_ready = crate::wait_until(timeout, ready_or_exited(self, ready));
        // workerd and wrangler say "Address already in use", node "address already in use".
        if self.exited()
            && self
                .logs()
                .to_ascii_lowercase()
                .contains("address already in use")
        {
            eprintln!("{}: a port was taken meanwhile; starting again", self.name);
            return false;
        }
        self.ready_or_panic(became_ready, start);
        true
    }

    fn ready_or_panic(&mut self, became_ready: bool, start: Instant) -> Duration {
        if !became_ready || self.exited() {
            panic!(
                "{} did not become ready ({}) in {:.1}s:\n{}",
                self.name,
                match self.status {
                    Some(s) => format!("exited: {s}"),
                    None => "still running".into(),
                },
                start.elapsed().as_secs_f64(),
                self.logs()
            );
        }
        start.elapsed()
    }

    /// Waits for the process to exit by itself, at most `timeout`; `None` if
    /// it had not by then (it is still running: stop it, or drop it).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        crate::wait_until(timeout, || self.exited());
        self.status
    }

    /// True once the process has exited.
    pub fn exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status.is_some()
    }

    /// The process id (also its group's id): for /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time used so far by the live processes of its group, by command
    /// name (`workerd`, `node`, …): where a benchmark's CPU went.
    pub fn group_cpu(&self) -> BTreeMap<String, Duration> {
        group_cpu(self.child.id())
    }

    /// Everything it wrote so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Stops the whole group: TERM, and KILL for whatever is left after a
    /// grace period. Idempotent.
    pub fn stop(&mut self) {
        let group = -(self.child.id() as i32);
        if !self.exited() {
            signal(group, libc::SIGTERM);
            crate::wait_until(STOP_GRACE, || self.exited());
        }
        // The leader's children (wrangler's workerd) may outlive it.
        signal(group, libc::SIGKILL);
        if self.status.is_none() {
            self.status = self.child.wait().ok();
        }
        if let Some(mut w) = self.watchdog.take() {
            signal(w.id() as i32, libc::SIGKILL);
            let _ = w.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid or a negative process group id we started.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// How many times a server is started on new ports after one it was given
/// was taken meanwhile (see [`start_on_free_ports`]).
pub const PORT_ATTEMPTS: u32 = 3;

/// Starts a server and waits until `ready` says it serves, starting it
/// again on new ports (`start` picks them with `free_port`) when one was
/// taken between being picked and being bound, at most [`PORT_ATTEMPTS`]
/// times. Panics, with the log, as [`Process::wait_ready`] does otherwise.
pub fn start_on_free_ports<T>(
    timeout: Duration,
    mut start: impl FnMut() -> (Process, T),
    ready: impl Fn(&T) -> bool,
) -> (Process, T) {
    for _ in 1..PORT_ATTEMPTS {
        let (mut process, started) = start();
        if process.wait_ready_unless_port_taken(timeout, || ready(&started)) {
            return (process, started);
        }
    }
    let (mut process, started) = start();
    process.wait_ready(timeout, || ready(&started));
    (process, started)
}

/// `ready`, or the process has exited (there is no point waiting then).
fn ready_or_exited<'a>(
    process: &'a mut Process,
    mut ready: impl FnMut() -> bool + 'a,
) -> impl FnMut() -> bool + 'a {
    move || ready() || process.exited()
}

/// Runs `command` to its end, at most `timeout` (then its group is killed):
/// whether it succeeded, and what it wrote.
pub fn run(name: &str, command: Command, timeout: Duration) -> (bool, String) {
    let dir = TempDir::new("run");
    let log = dir.path().join("out.log");
    let mut p = Process::spawn(name, command, &log, None);
    let status = p.wait_exit(timeout);
    p.stop();
    (status.is_some_and(|s| s.success()), p.logs())
}

/// Resident memory of a process, in KiB (`VmRSS` in /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// User plus system CPU time of a process, in clock ticks (/proc/<pid>/stat;
/// 100 a second on Linux).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// User plus system CPU time of the live processes in process group `pgid`,
/// summed by command name (/proc/<pid>/stat; exited ones are not counted).
pub fn group_cpu(pgid: u32) -> BTreeMap<String, Duration> {
    let mut by_name = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return by_name;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // state, ppid, pgrp, …; utime and stime are the 12th and 13th here.
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) != Some(pgid) {
            continue;
        }
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        *by_name.entry(name.to_owned()).or_insert(Duration::ZERO) +=
            Duration::from_millis((ticks(11) + ticks(12)) * 10);
    }
    by_name
}

/// CPU time the calling thread has used: a measure of work that, unlike
/// elapsed time, does not grow while the thread waits for a busy machine's
/// cores.
pub fn thread_cpu_time() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_whose_port_was_taken_meanwhile_is_started_again_on_another() {
        let dir = TempDir::new("ports-test");
        // Taken (bound and listening) by someone else between being picked
        // and being bound by the server.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let mut ports = Vec::new();
        let (mut server, port) = start_on_free_ports(
            Duration::from_secs(60),
            || {
                let port = if ports.is_empty() {
                    taken_port
                } else {
                    crate::ports::free_port()
                };
                ports.push(port);
                let log = dir.path().join(format!("server-{}.log", ports.len()));
                let mut node = Command::new("node");
                node.arg("-e")
                    .arg(
                        "require('net').createServer().listen(+process.argv[1], '127.0.0.1', \
                         () => console.log('listening'))",
                    )
                    .arg(port.to_string());
                (Process::spawn("server", node, &log, None), (port, log))
            },
            |(_, log)| std::fs::read_to_string(log).is_ok_and(|l| l.contains("listening")),
        );
        assert_eq!(
            ports.len(),
            2,
            "one start on the taken port, one on a new one"
        );
        assert_ne!(port.0, taken_port);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port.0)).is_ok());
        server.stop();
        drop(taken);
    }

    #[test]
    fn a_group_is_stopped_with_its_children() {
        let dir = TempDir::new("process-test");
        let log = dir.path().join("log");
        let pidfile = dir.path().join("grandchild");
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(r#"sleep 300 & echo $! > "$1"; echo started; wait"#)
            .arg("sh")
            .arg(&pidfile);
        let mut p = Process::spawn("sleeper", cmd, &log, None);
        p.wait_ready(Duration::from_secs(30), || {
            std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
        });
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(p.logs().contains("started"));
        p.stop();
        assert!(p.exited());
        // Gone, or a zombie waiting for whoever reaps orphans.
        let gone = crate::wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(format!("/proc/{grandchild}/stat")).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        });
        assert!(gone, "the grandchild outlived its group");
    }

    #[test]
    fn run_reports_success_output_and_timeouts() {
        let mut ok = Command::new("bash");
        ok.args(["-c", "echo hello; exit 0"]);
        assert_eq!(
            run("echo", ok, Duration::from_secs(30)),
            (true, "hello\n".into())
        );
        let mut fails = Command::new("bash");
        fails.args(["-c", "exit 3"]);
        assert!(!run("exit", fails, Duration::from_secs(30)).0);
        let mut hangs = Command::new("sleep");
        hangs.arg("300");
        assert!(!run("sleep", hangs, Duration::from_millis(200)).0);
    }
}
