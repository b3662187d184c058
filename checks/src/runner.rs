use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ov_plugin_api::{AutoFix, CheckReport, Status};

use crate::report;

type RunFn = Box<dyn FnOnce() -> Vec<CheckReport> + Send>;

/// One schedulable piece of the doctor.
pub struct Task {
    /// A check id (`config.file`) or a group id (`config`) for a batch.
    pub id: String,
    /// Shown when the task is skipped or times out.
    pub title: String,
    /// Task ids that must finish first; a failure among them skips this task.
    pub depends_on: Vec<String>,
    /// Task ids that must finish first, whatever their outcome: the task
    /// itself decides what a failure there means (a backend's checks).
    pub runs_after: Vec<String>,
    /// Report nothing, rather than a skip, when a prerequisite failed: a
    /// check that applies only in some states cannot tell whether it does.
    pub quiet_skip: bool,
    /// The checks a batch reports, when they are known before it runs
    /// (`ov doctor --list`): id and title.
    pub listed: Vec<(String, String)>,
    /// Whether `listed` is every check the task reports; a backend's batch
    /// names its checks only as it runs them.
    pub listed_all: bool,
    /// The least time this task gets, whatever the run's timeout.
    min_timeout: Duration,
    run: RunFn,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("depends_on", &self.depends_on)
            .finish_non_exhaustive()
    }
}

impl Task {
    /// A task producing several reports (a backend's checks).
    pub fn batch(
        id: impl Into<String>,
        title: impl Into<String>,
        run: impl FnOnce() -> Vec<CheckReport> + Send + 'static,
    ) -> Self {
        Task {
            id: id.into(),
            title: title.into(),
            depends_on: Vec::new(),
            runs_after: Vec::new(),
            quiet_skip: false,
            listed: Vec::new(),
            listed_all: false,
            min_timeout: Duration::ZERO,
            run: Box::new(run),
        }
    }

    /// A task producing exactly one report, whose id is the task's id.
    pub fn single(
        id: impl Into<String>,
        title: impl Into<String>,
        run: impl FnOnce() -> CheckReport + Send + 'static,
    ) -> Self {
        let mut task = Task::batch(id, title, move || vec![run()]);
        task.listed_all = true;
        task
    }

    pub fn after(mut self, dep: impl Into<String>) -> Self {
        self.depends_on.push(dep.into());
        self
    }

    /// Run once `dep` finished, whatever its outcome.
    pub fn runs_after(mut self, dep: impl Into<String>) -> Self {
        self.runs_after.push(dep.into());
        self
    }

    /// Report nothing when a prerequisite did not pass.
    pub fn quiet_skip(mut self) -> Self {
        self.quiet_skip = true;
        self
    }

    /// Every task this one waits for, gating or not.
    fn waits_for(&self) -> impl Iterator<Item = &String> {
        self.depends_on.iter().chain(&self.runs_after)
    }

    /// [`Task::waits_for`], for listing.
    pub(crate) fn waits_for_all(&self) -> Vec<String> {
        self.waits_for().cloned().collect()
    }

    /// Name every check this batch will report (maybe none), for `--list`.
    pub fn listing(mut self, checks: impl IntoIterator<Item = (String, String)>) -> Self {
        self.listed.extend(checks);
        self.listed_all = true;
        self
    }

    /// Give this task at least `limit`, for checks whose honest work is
    /// slow (a KeePass key derivation, gpg starting its agent): a short
    /// default timeout would report a healthy store as hung.
    pub fn at_least(mut self, limit: Duration) -> Self {
        self.min_timeout = self.min_timeout.max(limit);
        self
    }
}

/// A report with the time its task took.
#[derive(Debug, Clone)]
pub struct Finished {
    pub report: CheckReport,
    pub duration: Duration,
}

/// Does `id` fall under one of `patterns` (an exact id or a group prefix)?
fn matches_any(id: &str, patterns: &[String]) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| {
            id == p || id.starts_with(&format!("{p}.")) || p.starts_with(&format!("{id}."))
        })
}

/// Keep the tasks the user asked for and everything they depend on.
/// Returns the names in `patterns` that matched no task.
pub fn select(tasks: Vec<Task>, patterns: &[String]) -> (Vec<Task>, Vec<String>) {
    let unknown = patterns
        .iter()
        .filter(|p| {
            !tasks
                .iter()
                .any(|t| matches_any(&t.id, std::slice::from_ref(p)))
        })
        .cloned()
        .collect();
    let by_id: HashMap<&str, &Task> = tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut keep: HashSet<String> = HashSet::new();
    let mut stack: Vec<&str> = tasks
        .iter()
        .filter(|t| matches_any(&t.id, patterns))
        .map(|t| t.id.as_str())
        .collect();
    while let Some(id) = stack.pop() {
        if keep.insert(id.to_owned())
            && let Some(t) = by_id.get(id)
        {
            stack.extend(t.waits_for().map(String::as_str));
        }
    }
    let kept = tasks.into_iter().filter(|t| keep.contains(&t.id)).collect();
    (kept, unknown)
}

/// Task ids that lie on a dependency cycle.
fn cyclic(tasks: &[Task]) -> HashSet<String> {
    let deps: HashMap<&str, Vec<&String>> = tasks
        .iter()
        .map(|t| (t.id.as_str(), t.waits_for().collect()))
        .collect();
    let mut bad = HashSet::new();
    for t in tasks {
        // Depth-first walk from each task; reaching it again means a cycle.
        let mut seen = HashSet::new();
        let mut stack: Vec<&str> = t.waits_for().map(String::as_str).collect();
        while let Some(id) = stack.pop() {
            if id == t.id {
                bad.insert(t.id.clone());
                break;
            }
            if seen.insert(id)
                && let Some(d) = deps.get(id)
            {
                stack.extend(d.iter().map(|s| s.as_str()));
            }
        }
    }
    bad
}

#[derive(Default)]
struct Board {
    /// Worst status each finished task produced.
    done: HashMap<String, Status>,
}

/// Run every task in parallel, each within `timeout` once its prerequisites
/// are done. Reports come back in task order.
pub fn run(tasks: Vec<Task>, timeout: Duration) -> Vec<Finished> {
    let known: HashSet<String> = tasks.iter().map(|t| t.id.clone()).collect();
    let cycles = cyclic(&tasks);
    let board = Arc::new((Mutex::new(Board::default()), Condvar::new()));
    let mut handles = Vec::new();

    for (index, task) in tasks.into_iter().enumerate() {
        let board = Arc::clone(&board);
        let deps: Vec<String> = task
            .depends_on
            .iter()
            .filter(|d| known.contains(*d))
            .cloned()
            .collect();
        let after: Vec<String> = task
            .runs_after
            .iter()
            .filter(|d| known.contains(*d))
            .cloned()
            .collect();
        let in_cycle = cycles.contains(&task.id);
        let handle = thread::spawn(move || {
            let Task {
                id,
                title,
                run,
                min_timeout,
                quiet_skip,
                ..
            } = task;
            let timeout = timeout.max(min_timeout);
            let started = Instant::now();
            let reports = if in_cycle {
                vec![report(
                    &id,
                    &title,
                    Status::Fail,
                    "dependency cycle among checks (a bug in ov)",
                )]
            } else {
                let failed = wait_for(&board, &deps, &after);
                match failed {
                    Some(_) if quiet_skip => Vec::new(),
                    Some(failed) => {
                        let mut r = report(
                            &id,
                            &title,
                            Status::Skip,
                            format!("skipped: {failed} did not pass"),
                        );
                        r.depends_on = deps.clone();
                        vec![r]
                    }
                    None => run_with_timeout(&id, &title, run, timeout),
                }
            };
            let worst = reports.iter().map(|r| r.status).max().unwrap_or(Status::Ok);
            let (lock, cvar) = &*board;
            if let Ok(mut b) = lock.lock() {
                b.done.insert(id, worst);
            }
            cvar.notify_all();
            let duration = started.elapsed();
            (index, reports, duration)
        });
        handles.push(handle);
    }

    let mut ordered: BTreeMap<usize, Vec<Finished>> = BTreeMap::new();
    for h in handles {
        if let Ok((index, reports, duration)) = h.join() {
            ordered.insert(
                index,
                reports
                    .into_iter()
                    .map(|report| Finished { report, duration })
                    .collect(),
            );
        }
    }
    ordered.into_values().flatten().collect()
}

/// Block until every dependency and every task to run after finished; the
/// first dependency that failed or was skipped, if any.
fn wait_for(
    board: &Arc<(Mutex<Board>, Condvar)>,
    deps: &[String],
    after: &[String],
) -> Option<String> {
    let (lock, cvar) = &**board;
    let Ok(mut b) = lock.lock() else {
        return Some("the doctor's own bookkeeping".to_owned());
    };
    loop {
        if deps.iter().chain(after).all(|d| b.done.contains_key(d)) {
            return deps
                .iter()
                .find(|d| matches!(b.done.get(*d), Some(Status::Fail | Status::Skip)))
                .cloned();
        }
        b = match cvar.wait(b) {
            Ok(b) => b,
            Err(_) => return Some("the doctor's own bookkeeping".to_owned()),
        };
    }
}

fn run_with_timeout(id: &str, title: &str, run: RunFn, timeout: Duration) -> Vec<CheckReport> {
    let (tx, rx) = mpsc::channel();
    // Detached on purpose: a check that hangs is abandoned, and the process
    // exits without waiting for it.
    let spawned = thread::Builder::new()
        .name(format!("check {id}"))
        .spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
            let _ = tx.send(out);
        });
    if let Err(e) = spawned {
        return vec![report(
            id,
            title,
            Status::Fail,
            format!("could not start: {e}"),
        )];
    }
    match rx.recv_timeout(timeout) {
        Ok(Ok(reports)) => reports,
        Ok(Err(_)) => vec![report(
            id,
            title,
            Status::Fail,
            "the check panicked (a bug in ov)",
        )],
        Err(_) => {
            let mut r = report(
                id,
                title,
                Status::Fail,
                format!("timed out after {} ms", timeout.as_millis()),
            );
            r.fix = Some(format!(
                "ov doctor {id} --timeout {}",
                (timeout.as_millis() * 5).max(10_000)
            ));
            vec![r]
        }
    }
}

/// Apply a safe fix; the line to show the user, or why it did not work.
pub fn apply_auto_fix(fix: &AutoFix) -> Result<String, String> {
    match fix {
        AutoFix::Chmod { path, mode } => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
                .map(|()| format!("chmod {mode:o} {}", path.display()))
                .map_err(|e| format!("chmod {mode:o} {}: {e}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(id: &str) -> Task {
        let id2 = id.to_owned();
        Task::single(id, id, move || report(&id2, "t", Status::Ok, "fine"))
    }

    fn failing(id: &str) -> Task {
        let id2 = id.to_owned();
        Task::single(id, id, move || report(&id2, "t", Status::Fail, "broken"))
    }

    fn statuses(out: &[Finished]) -> Vec<(String, Status)> {
        out.iter()
            .map(|f| (f.report.id.clone(), f.report.status))
            .collect()
    }

    #[test]
    fn failed_prerequisite_skips_dependents() {
        let out = run(
            vec![
                failing("a"),
                ok("b").after("a"),
                ok("c").after("b"),
                ok("d"),
            ],
            Duration::from_secs(2),
        );
        assert_eq!(
            statuses(&out),
            vec![
                ("a".into(), Status::Fail),
                ("b".into(), Status::Skip),
                ("c".into(), Status::Skip),
                ("d".into(), Status::Ok)
            ]
        );
        assert!(out[1].report.finding.contains("a did not pass"));
    }

    #[test]
    fn a_hung_check_times_out_and_the_rest_finish() {
        let hung = Task::single("slow", "slow", || {
            thread::sleep(Duration::from_secs(60));
            report("slow", "t", Status::Ok, "never")
        });
        let started = Instant::now();
        let out = run(vec![hung, ok("fast")], Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(out[0].report.status, Status::Fail);
        assert_eq!(out[0].report.finding, "timed out after 200 ms");
        assert!(out[0].report.fix.is_some());
        assert_eq!(out[1].report.status, Status::Ok);
    }

    #[test]
    fn a_slow_but_honest_check_gets_its_own_budget() {
        let slow = |id: &str| {
            let id = id.to_owned();
            Task::single(id.clone(), "slow", move || {
                thread::sleep(Duration::from_millis(300));
                report(&id, "slow", Status::Ok, "done")
            })
        };
        let out = run(
            vec![
                slow("budgeted").at_least(Duration::from_secs(5)),
                slow("plain"),
            ],
            Duration::from_millis(50),
        );
        assert_eq!(out[0].report.status, Status::Ok);
        assert_eq!(out[0].report.finding, "done");
        assert_eq!(out[1].report.status, Status::Fail);
        assert!(out[1].report.finding.contains("timed out after 50 ms"));
    }

    #[test]
    fn a_panicking_check_fails_alone() {
        let boom = Task::single("boom", "boom", || panic!("check bug"));
        let out = run(vec![boom, ok("x")], Duration::from_secs(2));
        assert_eq!(
            statuses(&out),
            vec![("boom".into(), Status::Fail), ("x".into(), Status::Ok)]
        );
    }

    #[test]
    fn cycles_fail_instead_of_deadlocking() {
        let out = run(
            vec![ok("a").after("b"), ok("b").after("a")],
            Duration::from_secs(2),
        );
        assert!(out.iter().all(|f| f.report.status != Status::Ok));
    }

    #[test]
    fn select_keeps_dependencies_and_reports_unknown_names() {
        let tasks = vec![
            ok("config.file"),
            ok("config.mode").after("config.file"),
            ok("plugins.config"),
        ];
        let (kept, unknown) = select(tasks, &["config.mode".into(), "nope".into()]);
        let ids: Vec<_> = kept.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, vec!["config.file", "config.mode"]);
        assert_eq!(unknown, vec!["nope".to_owned()]);
    }

    #[test]
    fn runs_after_orders_without_skipping_and_select_follows_it() {
        let tasks = vec![
            failing("b.first"),
            ok("b.second").runs_after("b.first"),
            ok("b.third").after("b.first").quiet_skip(),
        ];
        let (kept, _) = select(tasks, &["b.second".into(), "b.third".into()]);
        assert_eq!(kept.len(), 3);
        let out = run(kept, Duration::from_secs(2));
        assert_eq!(
            statuses(&out),
            vec![
                ("b.first".into(), Status::Fail),
                ("b.second".into(), Status::Ok)
            ]
        );
    }

    #[test]
    fn group_selects_all_its_checks() {
        let tasks = vec![ok("config.file"), ok("config.mode"), ok("plugins.config")];
        let (kept, _) = select(tasks, &["plugins".into()]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].id, "plugins.config");
    }
}
