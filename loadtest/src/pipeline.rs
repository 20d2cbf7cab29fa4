//! `loadtest pipeline`: the whole pipeline at a rate, for capacity figures. It runs the
//! `local-pipeline` program (the harness behind `scripts/local-pipeline`, built from
//! `tests/e2e`) found beside this binary, writing `rate × duration` events at `rate` lines/s,
//! and passes its summary through.

use std::process::Command;

use anyhow::{Context, bail};

use crate::cli::PipelineArgs;

/// Runs it; the exit status is `local-pipeline`'s.
pub fn run(args: &PipelineArgs) -> anyhow::Result<i32> {
    let dir = std::env::current_exe()?.parent().context("binary without a directory")?.to_path_buf();
    let bin = dir.join("local-pipeline");
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --locked -p e2e -p tailer -p event-service -p exporter`",
            bin.display()
        );
    }
    let events = (args.rate as f64 * args.duration.as_secs_f64()).round() as u64;
    let mut cmd = Command::new(&bin);
    cmd.args(["--events", &events.to_string(), "--rate", &args.rate.to_string(), "--out"]).arg(&args.out);
    if args.json {
        cmd.arg("--json");
    }
    let status = cmd.status().with_context(|| format!("running {}", bin.display()))?;
    Ok(status.code().unwrap_or(1))
}
