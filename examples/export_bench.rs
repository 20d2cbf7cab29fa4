//! Throughput of the exporter draining a pre-filled subscription: events/s to write every event
//! into hourly part files, seconds until every hour is closed, and the exporter's CPU per event.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target cargo build --release -p examples --example export_bench
//! /work/target/release/examples/export_bench --events 200000 [--hours 3] [--storage local|memory] \
//!     [--max-events 50000] [--json]
//! ```
//!
//! (or `cargo run --release -p examples --example export_bench -- --events 200000 ...`).
//! Results are in `BENCHMARKS.md`, "Exporter throughput".
//!
//! Unless `PUBSUB_EMULATOR_HOST` is set, it starts Google's Pub/Sub emulator on a free port
//! (`PUBSUB_EMULATOR_BIN`, default the Cloud SDK's) and kills it at the end, also on error. It
//! writes a registry with one type `play` (`user`, `track`, `ms_played`), creates its topic and
//! `<topic>-exporter` subscription, and pre-fills it, untimed, with `--events` protobuf events
//! (~170 bytes, unique ids, event times evenly and in order over the last `--hours` complete
//! hours, the pipeline's attributes) through pubsub-client's `Publisher`. Then it times
//! [`exporter::Exporter`] **in this process** (a temp local directory or memory; lateness 0,
//! idle 2 s, tick 100 ms, files cut at `--max-events` or after 1 s) from `start` until
//! `events_written` is `--events`, and on until `hours_closed` is `--hours`. It prints events/s,
//! this process's CPU seconds and µs per event (only the exporter runs in it then), the emulator
//! JVM's CPU when the bench started it, peak RSS since the pre-fill (`VmHWM`, reset through
//! `/proc/self/clear_refs`), bytes written and the data files' size against the payload, and CPU
//! used by other processes; `--json` adds one JSON object as the last line. CPU is user + system
//! time from `/proc/<pid>/stat` (Linux only, `USER_HZ` = 100).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::{Parser, ValueEnum};
use event_model::{Event, Value, ValueKind};
use exporter::storage::StorageConfig;
use exporter::{Config, Exporter};
use prost::Message as _;
use prost_types::Timestamp;
use pubsub_client::{Client, Message, Subscription, Topic};

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`; 100 on Linux).
const USER_HZ: f64 = 100.0;
const PROJECT: &str = "eventpipe-bench";
const DEFAULT_EMULATOR_BIN: &str =
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator";

#[derive(Parser, Debug)]
#[command(about = "Export throughput of the exporter from a pre-filled subscription on the emulator")]
struct Args {
    /// Events pre-filled and exported.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Complete past hours the event times are spread over (= hours closed).
    #[arg(long, default_value_t = 3)]
    hours: u64,
    /// Where buckets are written.
    #[arg(long, value_enum, default_value_t = Storage::Local)]
    storage: Storage,
    /// Most events per part file (`files.max_events`).
    #[arg(long, default_value_t = 50_000)]
    max_events: usize,
    /// Print one JSON object as the last line too.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Storage {
    Local,
    Memory,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    ensure!(args.events > 0 && args.hours > 0 && args.max_events > 0, "--events, --hours, --max-events > 0");
    let dir = tempfile::Builder::new().prefix("export-bench-").tempdir().context("creating a temp dir")?;
    // Killed when dropped: at the end, on error, on panic.
    let (host, emulator) = match std::env::var("PUBSUB_EMULATOR_HOST") {
        Ok(host) if !host.is_empty() => (host, None),
        _ => EmulatorProcess::start(dir.path()).map(|e| (e.host.clone(), Some(e)))?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let run = runtime.block_on(run(&args, &host, emulator.as_ref().map(|e| e.child.id()), dir.path()))?;
    drop(runtime);
    drop(emulator);
    report(&args, &run)
}

/// The emulator JVM (the launcher script `exec`s java, so the child is the JVM).
struct EmulatorProcess {
    child: Child,
    host: String,
}

impl EmulatorProcess {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin = std::env::var("PUBSUB_EMULATOR_BIN").unwrap_or_else(|_| DEFAULT_EMULATOR_BIN.into());
        ensure!(Path::new(&bin).exists(), "no Pub/Sub emulator at {bin} (set PUBSUB_EMULATOR_HOST or _BIN)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log_path = dir.join("emulator.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(&bin)
            .args(["--host=127.0.0.1", &format!("--port={port}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let mut me = EmulatorProcess { child, host: format!("127.0.0.1:{port}") };
        let started = Instant::now();
        let ready = format!("Server started, listening on {port}");
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains(&ready) {
                break;
            }
            if let Some(status) = me.child.try_wait()? {
                bail!("the emulator exited ({status}):\n{text}");
            }
            ensure!(started.elapsed().as_secs() < 90, "the emulator did not start in 90 s:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("export_bench: emulator on {} after {:.1} s", me.host, started.elapsed().as_secs_f64());
        Ok(me)
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the timed window measured.
#[derive(Default)]
struct Run {
    payload_bytes: u64,
    prefill_seconds: f64,
    written_seconds: f64,
    closed_seconds: f64,
    cpu_written: f64,
    cpu_closed: f64,
    emulator_cpu: Option<f64>,
    machine_busy_written: f64,
    peak_rss_kib: u64,
    start_rss_kib: u64,
    rss_reset: bool,
    bytes_written: u64,
    data_bytes: Option<u64>,
    duplicates: u64,
    late: u64,
    write_failures: u64,
}

async fn run(args: &Args, host: &str, emulator_pid: Option<u32>, dir: &Path) -> anyhow::Result<Run> {
    let topic = format!("export-bench-{:08x}", fastrand::u32(..));
    let registry = dir.join("registry.toml");
    std::fs::write(
        &registry,
        format!(
            "[types.play]\ntopic = \"{topic}\"\nfields.user = {{ type = \"string\", required = true }}\n\
             fields.track = {{ type = \"string\", required = true }}\n\
             fields.ms_played = {{ type = \"int\", required = true }}\n"
        ),
    )?;
    let client = Client::builder().with_project(PROJECT).with_emulator_host(host).build().await?;
    client.create_topic(&Topic::new(&topic)).await.context("creating the topic")?;
    let sub = Subscription::new(format!("{topic}-exporter"), &topic).with_ack_deadline_seconds(60);
    client.create_subscription(&sub).await.context("creating the subscription")?;

    // Pre-fill (not timed).
    let mut run = Run::default();
    let t0 = Instant::now();
    let publisher = client.publisher(&topic)?;
    let first_hour =
        (SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64 / 3600 - args.hours as i64) * 3600;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut handles = Vec::with_capacity(args.events as usize);
    for i in 0..args.events {
        let e = play(i, first_hour, args, &mut rng);
        let data = e.encode_to_vec();
        run.payload_bytes += data.len() as u64;
        let m = Message::new(data).with_attributes(event_model::attributes(&e));
        handles.push(publisher.publish(&m).await?);
    }
    for h in handles {
        h.await.context("pre-filling")?;
    }
    publisher.shutdown().await;
    run.prefill_seconds = t0.elapsed().as_secs_f64();
    eprintln!("export_bench: published {} events in {:.1} s", args.events, run.prefill_seconds);
    // Peak RSS from here on is the exporter's (5 = reset VmHWM).
    run.rss_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    run.start_rss_kib = status_kib("VmRSS")?;

    let root = dir.join("buckets");
    let storage = match args.storage {
        Storage::Local => StorageConfig::Local { path: root.clone() },
        Storage::Memory => StorageConfig::Memory,
    };
    let mut config = Config::new(PROJECT, &registry, storage).with_emulator_host(host).with_replica("bench");
    config.files.max_events = args.max_events;
    config.files.max_age_ms = 1000;
    config.pull.max_outstanding_messages = config.pull.max_outstanding_messages.max(2 * args.max_events);
    config.close.allowed_lateness_secs = 0;
    config.close.idle_secs = 2;
    config.close.tick_ms = 100;
    config.shutdown_timeout_secs = 5; // after the timed window; the subscriber waits out its grace

    let emu_stat = emulator_pid.map(|p| format!("/proc/{p}/stat"));
    let emu_cpu = || emu_stat.as_deref().map(cpu_seconds).transpose();
    let deadline = Duration::from_secs(120 + args.events / 500);
    let (cpu0, emu0, machine0) = (cpu_seconds("/proc/self/stat")?, emu_cpu()?, machine_busy_seconds()?);
    let start = Instant::now();
    let exporter = Exporter::start(config).await.context("starting the exporter")?;
    let m = exporter.metrics();
    let (end, written) = (start + deadline, || m.events_written.get());
    ensure!(wait_until(end, || written() >= args.events).await, "after {deadline:?}: {} written", written());
    run.written_seconds = start.elapsed().as_secs_f64();
    run.cpu_written = cpu_seconds("/proc/self/stat")? - cpu0;
    run.emulator_cpu = emu_cpu()?.zip(emu0).map(|(a, b)| a - b);
    run.machine_busy_written = machine_busy_seconds()? - machine0;
    let closed = || m.hours_closed.get();
    ensure!(
        wait_until(end, || closed() >= args.hours).await,
        "after {deadline:?}: {} hours closed",
        closed()
    );
    run.closed_seconds = start.elapsed().as_secs_f64();
    run.cpu_closed = cpu_seconds("/proc/self/stat")? - cpu0;
    run.peak_rss_kib = status_kib("VmHWM")?;
    run.bytes_written = m.bytes_written.get();
    run.duplicates = m.duplicates_dropped.get();
    run.late = m.late_events.get();
    run.write_failures = m.write_failures.get();
    exporter.shutdown().await.context("stopping the exporter")?;
    if args.storage == Storage::Local {
        // The data files the `_SUCCESS` manifests list (parts are in `_staging/`, deleted at
        // close); empty hours up to the watermark have a manifest too.
        let (mut data, mut manifests) = (0, 0);
        for path in files_under(&root) {
            if path.file_name().is_some_and(|n| n == exporter::manifest::MANIFEST) {
                let manifest: exporter::manifest::Manifest = serde_json::from_slice(&std::fs::read(&path)?)?;
                data += manifest.files.iter().map(|f| f.bytes).sum::<u64>();
                manifests += u64::from(manifest.event_count > 0);
            }
        }
        ensure!(manifests == args.hours, "{manifests} hours with events closed, expected {}", args.hours);
        run.data_bytes = Some(data);
    }
    Ok(run)
}

/// Polls `done` every 5 ms until it holds (true) or `deadline` passes (false).
async fn wait_until(deadline: Instant, done: impl Fn() -> bool) -> bool {
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Event `i` of the pre-fill: its time is `i / events` of the way through the hours.
fn play(i: u64, first_hour: i64, args: &Args, rng: &mut fastrand::Rng) -> Event {
    let span_ms = args.hours * 3_600_000;
    let at_ms = first_hour * 1000 + (i as u128 * span_ms as u128 / args.events as u128) as i64;
    let ts = |ms: i64| Some(Timestamp { seconds: ms / 1000, nanos: (ms % 1000) as i32 * 1_000_000 });
    let text = |s: String| Value { kind: Some(ValueKind::StringValue(s)) };
    let track = std::iter::repeat_with(|| rng.alphanumeric()).take(22).collect::<String>();
    Event {
        id: format!("{:016x}{i:016x}", rng.u64(..)),
        r#type: "play".into(),
        schema_version: 1,
        event_time: ts(at_ms),
        received_time: ts(at_ms + rng.i64(50..3000)),
        source: format!("web-{}", rng.u8(1..20)),
        fields: [
            ("user".to_string(), text(format!("user-{:08}", rng.u32(..50_000_000)))),
            ("track".to_string(), text(format!("spotify:track:{track}"))),
            ("ms_played".to_string(), Value { kind: Some(ValueKind::IntValue(rng.i64(1_000..600_000))) }),
        ]
        .into(),
    }
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let (mut out, mut stack) = (Vec::new(), vec![root.to_path_buf()]);
    while let Some(d) = stack.pop() {
        for p in std::fs::read_dir(&d).into_iter().flatten().flatten().map(|e| e.path()) {
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

fn report(args: &Args, run: &Run) -> anyhow::Result<()> {
    let (n, secs, payload) = (args.events as f64, run.written_seconds, run.payload_bytes as f64);
    let (eps, cores, us) = (n / secs, run.cpu_written / secs, run.cpu_written * 1e6 / n);
    let us_closed = run.cpu_closed * 1e6 / n;
    let emu_cores = run.emulator_cpu.map(|c| c / secs);
    let busy = run.machine_busy_written / secs;
    let others = (busy - cores - emu_cores.unwrap_or(0.0)).max(0.0);
    let rss_mib = run.peak_rss_kib as f64 / 1024.0;
    let storage = format!("{:?}", args.storage).to_lowercase();
    let (hours, max_events, closed, cpu) = (args.hours, args.max_events, run.closed_seconds, run.cpu_written);
    let (mb, per_event) = (payload / 1e6, payload / n);
    let start_mib = run.start_rss_kib as f64 / 1024.0;
    let reset = if run.rss_reset { "" } else { ", pre-fill included" };
    let emulator = match run.emulator_cpu.zip(emu_cores) {
        Some((c, k)) => format!("{c:.2} CPU s ({k:.2} cores) = {:.0} µs CPU/event", c * 1e6 / n),
        None => "not started by the bench, CPU not measured".into(),
    };
    let pct = |b: u64| b as f64 * 100.0 / payload;
    let mut bytes =
        format!("bytes written {} ({:.1}% of payload)", run.bytes_written, pct(run.bytes_written));
    if let Some(d) = run.data_bytes {
        bytes += &format!("; data files {d} ({:.1}% of payload, {:.2}:1)", pct(d), payload / d as f64);
    }
    let (duplicates, late, failures) = (run.duplicates, run.late, run.write_failures);
    let quiet = match run.emulator_cpu {
        None => " (the emulator's included)",
        Some(_) if others > 0.1 => " (NOT QUIET: figures are suspect)",
        Some(_) => "",
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{n} events ({mb:.1} MB payload, {per_event:.0} B/event) over {hours} hours, storage {storage}, \
         max_events {max_events}\n  all written in {secs:.2} s = {eps:.0} events/s; hours closed after \
         {closed:.2} s\n  exporter: {cpu:.2} CPU s ({cores:.2} cores) = {us:.1} µs CPU/event ({us_closed:.1} \
         to closed), peak RSS {rss_mib:.1} MiB (RSS at start {start_mib:.1}{reset})\n  emulator: {emulator}\n  \
         {bytes}\n  {duplicates} duplicates dropped, {late} late, {failures} write failures; machine \
         {busy:.2} of 2 cores busy, {others:.2} by other processes{quiet}"
    )?;
    if args.json {
        let summary = serde_json::json!({
            "events": args.events, "hours": args.hours, "storage": storage, "max_events": args.max_events,
            "payload_bytes": run.payload_bytes, "prefill_seconds": run.prefill_seconds,
            "written_seconds": secs, "events_per_s": eps.round(), "closed_seconds": run.closed_seconds,
            "exporter_cpu_s": run.cpu_written, "exporter_cores": cores, "exporter_cpu_us_per_event": us,
            "exporter_cpu_s_to_closed": run.cpu_closed, "exporter_cpu_us_per_event_to_closed": us_closed,
            "emulator_cpu_s": run.emulator_cpu, "emulator_cores": emu_cores,
            "peak_rss_mib": rss_mib, "start_rss_mib": start_mib, "peak_rss_reset_after_prefill": run.rss_reset,
            "bytes_written": run.bytes_written, "data_bytes": run.data_bytes,
            "duplicates_dropped": run.duplicates, "late_events": run.late, "write_failures": run.write_failures,
            "machine_busy_cores": busy, "other_processes_cores": others,
        });
        writeln!(out, "{summary}")?;
    }
    Ok(())
}

/// User + system CPU seconds of a process, from its `/proc/<pid>/stat`.
fn cpu_seconds(stat: &str) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(stat).with_context(|| format!("reading {stat}"))?;
    // Fields 14 (utime) and 15 (stime) are the 12th and 13th after the `)` that ends field 2.
    let rest = text.rsplit_once(')').map(|(_, r)| r).context("unexpected /proc/<pid>/stat")?;
    let ticks: Vec<u64> =
        rest.split_whitespace().skip(11).take(2).map(str::parse).collect::<Result<_, _>>()?;
    ensure!(ticks.len() == 2, "short {stat}");
    Ok((ticks[0] + ticks[1]) as f64 / USER_HZ)
}

/// Busy CPU seconds of the whole machine since boot (all CPUs; `/proc/stat` minus idle and iowait).
fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().find(|l| l.starts_with("cpu ")).context("no cpu line in /proc/stat")?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let t: Vec<u64> = line.split_whitespace().skip(1).take(8).map(str::parse).collect::<Result<_, _>>()?;
    ensure!(t.len() == 8, "short cpu line in /proc/stat");
    Ok((t.iter().sum::<u64>() - t[3] - t[4]) as f64 / USER_HZ)
}

/// A `kB` figure of `/proc/self/status` (`VmHWM`: peak RSS; `VmRSS`: RSS now), in KiB.
fn status_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status.lines().find_map(|l| l.strip_prefix(field)).with_context(|| format!("no {field}"))?;
    line.trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("parsing /proc/self/status")
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_unique_ordered_and_in_the_hours() {
        let args = Args::parse_from(["export_bench", "--events", "1000", "--hours", "3"]);
        let mut rng = fastrand::Rng::with_seed(7);
        let first = 1_795_428_000;
        let events: Vec<Event> = (0..1000).map(|i| play(i, first, &args, &mut rng)).collect();
        let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 1000);
        let secs: Vec<i64> = events.iter().map(|e| e.event_time.map_or(0, |t| t.seconds)).collect();
        assert!(secs.is_sorted() && secs[0] == first && secs[999] < first + 3 * 3600);
        let hours: std::collections::HashSet<i64> = secs.iter().map(|s| s / 3600).collect();
        assert_eq!(hours.len(), 3);
        let mean = events.iter().map(|e| e.encoded_len()).sum::<usize>() / 1000;
        assert!((130..200).contains(&mean), "{mean} bytes");
    }
}
