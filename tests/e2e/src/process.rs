//! One component of the pipeline as a child process that can be killed and restarted.
//!
//! Each start appends the process's stdout and stderr to one log file, so a restarted process
//! keeps its history. A small `sh` watchdog per start kills the child with `SIGKILL` as soon as
//! the harness process is gone (even when it was killed itself), so no component outlives a
//! test run.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};

/// Polling interval while waiting for a process to exit.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// `$1` harness pid, `$2` child pid: kill the child once the harness is gone; exit when the
/// child is gone (reaped).
const WATCHDOG_SCRIPT: &str = r#"
while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 0.5; done
kill -0 "$1" 2>/dev/null || kill -9 "$2" 2>/dev/null
exit 0
"#;

/// A component process: how to start it, and the running child if any.
#[derive(Debug)]
pub struct Proc {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    removed_envs: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    watchdogs: Vec<Child>,
    starts: u32,
    kills: u32,
    pauses: u32,
    paused: bool,
}

impl Proc {
    /// A process named `name` (for messages) running `program args`, logging to `log`.
    pub fn new(name: &str, program: &Path, args: &[&str], log: &Path) -> Proc {
        Proc {
            name: name.to_owned(),
            program: program.to_path_buf(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            envs: Vec::new(),
            removed_envs: Vec::new(),
            log: log.to_path_buf(),
            child: None,
            watchdogs: Vec::new(),
            starts: 0,
            kills: 0,
            pauses: 0,
            paused: false,
        }
    }

    /// Sets an environment variable for every start.
    pub fn with_env(mut self, key: &str, value: &str) -> Proc {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Removes an inherited environment variable for every start.
    pub fn without_env(mut self, key: &str) -> Proc {
        self.removed_envs.push(key.to_owned());
        self
    }

    /// The name given to [`Proc::new`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// How often it was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// How often it was killed with `SIGKILL` by [`Proc::kill`].
    pub fn kills(&self) -> u32 {
        self.kills
    }

    /// How often it was stopped with `SIGSTOP` by [`Proc::pause`].
    pub fn pauses(&self) -> u32 {
        self.pauses
    }

    /// Whether it is stopped by [`Proc::pause`] and not yet resumed.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Stops the process with `SIGSTOP` (it keeps its connections and leases, but does
    /// nothing), as a long GC pause, a frozen VM or a partition would. Nothing happens when
    /// it is not running or already paused.
    pub fn pause(&mut self) {
        if !self.paused && self.is_running() && self.signal("STOP") {
            self.paused = true;
            self.pauses += 1;
        }
    }

    /// Continues a process stopped by [`Proc::pause`] with `SIGCONT`.
    pub fn resume(&mut self) {
        if self.paused {
            self.signal("CONT");
            self.paused = false;
        }
    }

    /// Sends `SIG<name>` to the running child; whether `kill` succeeded.
    fn signal(&self, name: &str) -> bool {
        let Some(child) = self.child.as_ref() else { return false };
        Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts the process (it must not be running).
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Err(Error::Process(format!("{} is already running", self.name)));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Error::io(&self.log, e))?;
        let err = log.try_clone().map_err(|e| Error::io(&self.log, e))?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).stdin(Stdio::null()).stdout(log).stderr(err);
        // Its own process group: a Ctrl-C at the terminal reaches the harness, which stops the
        // components in order, rather than every process at once.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        for k in &self.removed_envs {
            cmd.env_remove(k);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| {
            Error::Process(format!("cannot start {} ({}): {e}", self.name, self.program.display()))
        })?;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("e2e-watchdog")
            .arg(std::process::id().to_string())
            .arg(child.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Process(format!("cannot start the watchdog `sh`: {e}")))?;
        self.reap_watchdogs();
        self.watchdogs.push(watchdog);
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// Whether the process is running (an exited child is reaped).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// The exit status if the process has exited on its own since its last start.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Kills the process with `SIGKILL` and reaps it. Nothing happens when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                self.kills += 1;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
        self.reap_watchdogs();
    }

    /// Sends `SIGTERM` and waits up to `grace` for the exit, then kills it. Returns the exit
    /// status of a process that exited within `grace`.
    pub async fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        let Some(child) = self.child.as_mut() else {
            return Err(Error::Process(format!("{} is not running", self.name)));
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).stdin(Stdio::null()).status();
        // A stopped process handles the SIGTERM only once it runs again.
        self.resume();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            if let Some(status) = self.exited() {
                self.reap_watchdogs();
                return Ok(status);
            }
            if tokio::time::Instant::now() >= deadline {
                self.kill();
                return Err(Error::Timeout(format!(
                    "{} did not exit within {grace:?} of SIGTERM",
                    self.name
                )));
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }

    /// The log's length in bytes now (an offset for [`Proc::log_since`]).
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// What the log gained after byte `offset` (lossy UTF-8).
    pub fn log_since(&self, offset: u64) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        let from = (offset as usize).min(bytes.len());
        String::from_utf8_lossy(&bytes[from..]).into_owned()
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn reap_watchdogs(&mut self) {
        self.watchdogs.retain_mut(|w| matches!(w.try_wait(), Ok(None)));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        for w in &mut self.watchdogs {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
