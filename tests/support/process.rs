//! Outside programs a test starts and leaves running (the service, nginx,
//! HAProxy, the sinks, a keep-alive client). Each leads a process group of
//! its own, so that stopping it stops everything it started too (nginx's
//! workers, runuser's service), and it is stopped when its owner is dropped,
//! whether the test passed or panicked. `tests/run` checks at the end of the
//! suite that nothing it started is left.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

/// The environment variable `tests/run` marks the suite's processes with,
/// to find any left running at its end.
pub const RUN_MARK: &str = "CONNECT_PKI_TEST_RUN";

/// Passes the run's mark to a command started with a cleared environment.
pub fn keep_run_mark(cmd: &mut Command) {
    if let Ok(mark) = std::env::var(RUN_MARK) {
        cmd.env(RUN_MARK, mark);
    }
}

/// How long a program gets to stop after SIGTERM before its group is killed.
pub const GRACE: Duration = Duration::from_secs(10);

/// A running program and its process group.
#[derive(Debug)]
pub struct Spawned {
    child: Option<Child>,
}

impl Spawned {
    /// Starts `cmd` as the leader of a new process group.
    pub fn start(cmd: &mut Command) -> std::io::Result<Self> {
        Ok(Self { child: Some(cmd.process_group(0).spawn()?) })
    }

    /// The leader's process id, while it has not been stopped.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The leader, for its pipes.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the program was stopped")
    }

    /// Whether the leader is still running (it is not reaped here).
    pub fn running(&self) -> bool {
        self.child.as_ref().is_some_and(|c| !exited(c.id()))
    }

    /// SIGTERM to the group; whatever of it is left after `grace` gets
    /// SIGKILL. Returns the leader's exit status, `None` if it had to be
    /// killed (or was stopped before).
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let child = self.child.as_ref()?;
        signal_group(child.id(), Signal::TERM);
        let deadline = Instant::now() + grace;
        while !exited(child.id()) {
            if Instant::now() >= deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.reap()
    }

    /// SIGKILL to the whole group, no chance to clean up; then reaps the leader.
    pub fn kill(&mut self) {
        if let Some(child) = &self.child {
            signal_group(child.id(), Signal::KILL);
        }
        self.reap();
    }

    /// Collects the leader once it has exited (stopped, or killed from
    /// outside), after killing any member of its group that outlived it. The
    /// leader is reaped last: until then its id is not given out again, so
    /// the signal cannot reach anyone else's group.
    pub fn reap(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        while !exited(child.id()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        signal_group(child.id(), Signal::KILL);
        child.wait().ok()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop(GRACE);
    }
}

fn signal_group(leader: u32, signal: Signal) {
    // The group is ours (made by `process_group(0)` at spawn) and its leader
    // is not yet reaped, so its id is not anyone else's.
    if let Some(pgid) = pid(leader) {
        let _ = rustix::process::kill_process_group(pgid, signal);
    }
}

/// Whether the child has exited, without reaping it (WNOWAIT).
fn exited(leader: u32) -> bool {
    let Some(p) = pid(leader) else { return true };
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    !matches!(rustix::process::waitid(WaitId::Pid(p), options), Ok(None))
}

fn pid(id: u32) -> Option<Pid> {
    Pid::from_raw(i32::try_from(id).ok()?)
}
