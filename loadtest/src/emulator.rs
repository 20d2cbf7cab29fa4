//! The Pub/Sub emulator for `--target emulator`: `PUBSUB_EMULATOR_HOST` when set, otherwise
//! started from the machine image (Google Cloud SDK) on a free port and stopped at the end.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Where the SDK puts the emulator; `PUBSUB_EMULATOR_BIN` overrides it.
const DEFAULT_BIN: &str = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator";
/// The JVM takes seconds to start.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// An emulator this process started (killed on drop), or the one the environment names.
pub struct Emulator {
    host: String,
    child: Option<Child>,
}

impl Emulator {
    /// `PUBSUB_EMULATOR_HOST`, or a new emulator.
    pub fn from_env_or_start() -> anyhow::Result<Emulator> {
        if let Ok(host) = std::env::var("PUBSUB_EMULATOR_HOST")
            && !host.is_empty()
        {
            return Ok(Emulator { host, child: None });
        }
        let bin =
            std::env::var("PUBSUB_EMULATOR_BIN").map_or_else(|_| PathBuf::from(DEFAULT_BIN), PathBuf::from);
        if !bin.exists() {
            bail!(
                "PUBSUB_EMULATOR_HOST is not set and there is no emulator at {} (set PUBSUB_EMULATOR_BIN)",
                bin.display()
            );
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        eprintln!("starting the Pub/Sub emulator on 127.0.0.1:{port} (takes a few seconds)");
        let mut cmd = Command::new(&bin);
        // Its own process group: the launcher script starts a JVM, and both go at the end.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .args(["--host=127.0.0.1", &format!("--port={port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_millis(200))
            .is_err()
        {
            if let Some(status) = child.try_wait()? {
                bail!("the emulator exited at start: {status}");
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                bail!("the emulator did not listen on port {port} within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Emulator { host: format!("127.0.0.1:{port}"), child: Some(child) })
    }

    /// `host:port`.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", c.id())]).status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
