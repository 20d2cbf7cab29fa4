//! Where the component binaries are, building them for tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Paths of the three component binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The tailer.
    pub tailer: PathBuf,
    /// The event-service.
    pub event_service: PathBuf,
    /// The exporter.
    pub exporter: PathBuf,
}

impl Binaries {
    /// The binaries in `dir` (e.g. `target/release`), which must exist.
    pub fn in_dir(dir: &Path) -> Result<Binaries> {
        let find = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::Process(format!(
                    "{} not found; build it with `cargo build --release --locked -p {name}`",
                    p.display()
                )))
            }
        };
        Ok(Binaries {
            tailer: find("tailer")?,
            event_service: find("event-service")?,
            exporter: find("exporter")?,
        })
    }

    /// For integration tests: builds the binaries with the profile and target directory of
    /// the running test executable (`cargo build` is a no-op when they are up to date), once
    /// per process, and returns them.
    pub fn for_tests() -> Result<Binaries> {
        static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        let dir = BUILT.get_or_init(build_for_tests).clone().map_err(Error::Process)?;
        Binaries::in_dir(&dir)
    }
}

/// `target/<profile>/deps/<test>` → builds into `target/<profile>`.
fn build_for_tests() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test executable path {}", exe.display()))?
        .to_path_buf();
    let target_dir = profile_dir.parent().ok_or("test executable has no target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--locked", "--bins", "-p", "tailer", "-p", "event-service", "-p", "exporter"])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("building the binaries failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(profile_dir)
}
