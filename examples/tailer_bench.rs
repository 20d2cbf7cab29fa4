//! Throughput of the tailer's read + parse + send path: lines/s and MB/s of log files read,
//! turned into events and acknowledged by an ingest server that is not the bottleneck, and the
//! tailer's CPU time per line.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target cargo build --release -p examples --example tailer_bench
//! /work/target/release/examples/tailer_bench --lines 5000000 --line-bytes 200 [--files 1] [--gzip] \
//!     [--batch 1000] [--in-flight 4] [--json]
//! ```
//!
//! (or `cargo run --release -p examples --example tailer_bench -- --lines 5000000 ...`).
//! Results are in `BENCHMARKS.md`, "Tailer throughput".
//!
//! One binary, two roles (the first argument):
//!
//! * no role (the orchestrator): writes `--lines` lines of exactly `--line-bytes` bytes
//!   (newline included) into `--files` log files in a temporary directory and syncs them, before
//!   any timing; each line is an RFC 3339 syslog line of the program `eventlog` with a TSV
//!   `key=value` `play` payload, unique by its `seq`, padded with `pad=xxx…`. It starts `sink` as
//!   a child process, then starts a [`tailer::Tailer`] **in this process** (the repo's
//!   `config/registry.toml`, tag `eventlog`, the flags' gzip / batch / requests in flight,
//!   `max_bytes` 4 MiB, polling every 10 ms, globbing every 100 ms) and times from
//!   `Tailer::start` until the tailer has every line acknowledged (`events_acked`). It prints
//!   lines/s, MB/s (10^6 bytes) and MiB/s, the tailer's CPU seconds and CPU ns per line (this
//!   process holds only the tailer while it runs), the sink's CPU over the same window, this
//!   process's peak RSS (`VmHWM`), and the CPU other processes used meanwhile. `--json` adds
//!   one JSON object as the last line.
//! * `sink`: the counting [`testkit::IngestSink`] (the event-service's ingest API; events are
//!   counted, not decoded or recorded; gzip bodies are decompressed) on a free port of
//!   127.0.0.1. The first stdout line is its address; it stops when its stdin closes and
//!   prints its totals as one JSON line.
//!
//! The files are in the page cache when the run starts (just written), as the files a tailer
//! follows usually are. CPU is user + system time of all threads from `/proc/<pid>/stat`
//! (Linux only, `USER_HZ` = 100).

use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, Subcommand};
use tailer::parse::{LineMeta, LineParser, ParseRule};
use tailer::{Config, SourceConfig, Tailer};
use testkit::{IngestSink, SinkOptions};

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`; 100 on Linux).
const USER_HZ: f64 = 100.0;
/// The syslog program tag of the benchmark's lines; the source accepts only it.
const TAG: &str = "eventlog";

#[derive(Parser, Debug)]
#[command(about = "Read + parse + send throughput of the tailer against a counting ingest sink")]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Subcommand, Debug)]
enum Role {
    /// The counting ingest server; prints its address, stops when stdin closes.
    Sink,
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// Lines in all (spread evenly over the files).
    #[arg(long, default_value_t = 5_000_000)]
    lines: u64,
    /// Log files the lines are spread over.
    #[arg(long, default_value_t = 1)]
    files: u64,
    /// Bytes of every line, newline included.
    #[arg(long, default_value_t = 200)]
    line_bytes: usize,
    /// Gzip request bodies (`service.gzip`).
    #[arg(long)]
    gzip: bool,
    /// Events per request (`batch.max_events`).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Requests in flight (`batch.max_in_flight`).
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// Print one JSON object as the last line too.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.role {
        Some(Role::Sink) => sink(),
        None => orchestrate(&cli.bench),
    }
}

// ---------------------------------------------------------------------------------------------
// Orchestrator
// ---------------------------------------------------------------------------------------------

fn orchestrate(args: &BenchArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    ensure!(args.lines > 0 && args.files > 0, "--lines and --files must be at least 1");
    let dir = tempfile::Builder::new().prefix("tailer-bench-").tempdir().context("creating a temp dir")?;
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs)?;
    let registry = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry.toml");
    let mut rule = ParseRule::default();
    rule.tag = Some(TAG.into());
    check_line(args.line_bytes, &rule, &registry)?;
    let written = Instant::now();
    write_files(args, &logs)?;
    eprintln!(
        "tailer_bench: wrote {} lines in {} file(s) in {:.1} s",
        args.lines,
        args.files,
        written.elapsed().as_secs_f64()
    );

    let exe = std::env::current_exe().context("finding this executable")?;
    let mut sink = Command::new(&exe)
        .arg("sink")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the sink")?;
    let mut sink_out = BufReader::new(sink.stdout.take().context("sink stdout")?);
    let mut line = String::new();
    sink_out.read_line(&mut line).context("reading the sink's address")?;
    let sink_addr: SocketAddr =
        line.trim().parse().with_context(|| format!("sink printed {line:?}, not an address"))?;

    let mut config = Config::new(
        format!("http://{sink_addr}/v1/events"),
        dir.path().join("data"),
        vec![SourceConfig::new([logs.join("events-*.log").to_string_lossy()]).with_parse(rule)],
    )
    .with_host("bench-host")
    .with_registry(&registry);
    config.service.gzip = args.gzip;
    config.batch.max_events = args.batch;
    config.batch.max_bytes = 4 << 20;
    config.batch.max_in_flight = args.in_flight;
    config.read.poll_interval_ms = 10;
    config.read.glob_interval_ms = 100;

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(run_tailer(config, args.lines, sink.id()));
    drop(runtime);

    // Closing its stdin stops the sink, which prints its totals.
    drop(sink.stdin.take());
    line.clear();
    sink_out.read_line(&mut line).context("reading the sink's totals")?;
    let status = sink.wait().context("waiting for the sink")?;
    let run = result?;
    let totals: serde_json::Value =
        serde_json::from_str(line.trim()).with_context(|| format!("sink ({status}) printed {line:?}"))?;
    report(args, &run, &totals)
}

/// Parses a line of the benchmark with the source's rule before anything is timed, so a line
/// the tailer would skip fails the run at once instead of at the deadline.
fn check_line(line_bytes: usize, rule: &ParseRule, registry: &Path) -> anyhow::Result<()> {
    let registry = event_model::Registry::load(registry).context("loading config/registry.toml")?;
    let mut parser = LineParser::new(rule, Some(&registry))?;
    let mut line = Vec::new();
    write_line(&mut line, 4_999_999, line_bytes, &mut fastrand::Rng::with_seed(1))?;
    let text = std::str::from_utf8(&line)?.trim_end();
    let meta = LineMeta { id: "0123456789abcdef", source: "bench-host", read_time: (1_795_464_000, 0) };
    parser.encode(text, &meta, &mut Vec::new()).map_err(|e| anyhow::anyhow!("{text:?}: {e}"))
}

/// Writes the files: file `f` holds the lines `seq` in `[f*n/files, (f+1)*n/files)`.
fn write_files(args: &BenchArgs, logs: &Path) -> anyhow::Result<()> {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut line = Vec::with_capacity(args.line_bytes);
    for f in 0..args.files {
        let path = logs.join(format!("events-{f}.log"));
        let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        for seq in f * args.lines / args.files..(f + 1) * args.lines / args.files {
            line.clear();
            write_line(&mut line, seq, args.line_bytes, &mut rng)?;
            out.write_all(&line)?;
        }
        // Synced, so that writing back dirty pages does not compete with the run.
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    Ok(())
}

/// Appends line `seq`: `line_bytes` bytes with the newline, e.g.
/// `2026-11-23T18:00:01.234Z web-1 eventlog: play\tuser=u004711\ttrack=spotify:track:…\t
/// ms_played=183000\tshuffle=false\tseq=1234\tpad=xxx…`.
fn write_line(buf: &mut Vec<u8>, seq: u64, line_bytes: usize, rng: &mut fastrand::Rng) -> anyhow::Result<()> {
    let start = buf.len();
    let ms = seq % (6 * 3_600_000); // one line per millisecond from 18:00, wrapping at midnight
    let (h, m, s, milli) = (18 + ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    write!(
        buf,
        "2026-11-23T{h:02}:{m:02}:{s:02}.{milli:03}Z web-1 {TAG}: play\tuser=u{:06}\t",
        rng.u32(..1_000_000)
    )?;
    buf.extend_from_slice(b"track=spotify:track:");
    buf.extend(std::iter::repeat_with(|| rng.alphanumeric() as u8).take(22));
    write!(buf, "\tms_played={}\tshuffle={}\tseq={seq}\tpad=", rng.u32(1000..600_000), rng.bool())?;
    let used = buf.len() - start;
    if used + 1 > line_bytes {
        bail!("--line-bytes {line_bytes} is too short: a line needs at least {} bytes", used + 1);
    }
    buf.resize(start + line_bytes - 1, b'x');
    buf.push(b'\n');
    Ok(())
}

/// What the timed window measured.
struct Run {
    seconds: f64,
    cpu: f64,
    sink_cpu: f64,
    machine_busy: f64,
    peak_rss_kib: u64,
    bytes_read: u64,
    read_paused: f64,
    retries: u64,
}

async fn run_tailer(config: Config, lines: u64, sink_pid: u32) -> anyhow::Result<Run> {
    let deadline = Duration::from_secs(120 + lines / 50_000);
    let sink_stat = format!("/proc/{sink_pid}/stat");
    let (cpu0, sink0, machine0) =
        (cpu_seconds("/proc/self/stat")?, cpu_seconds(&sink_stat)?, machine_busy_seconds()?);
    let start = Instant::now();
    let tailer = Tailer::start(config).await.context("starting the tailer")?;
    let m = tailer.metrics();
    while m.events_acked.get() < lines {
        if start.elapsed() > deadline || m.events_rejected.get() > 0 {
            let (read, sent) = (m.lines_read.get(), m.events_sent.get());
            let (acked, rejected) = (m.events_acked.get(), m.events_rejected.get());
            tailer.kill().await;
            bail!(
                "after {:.1} s: {read} lines read, {sent} events sent, {acked} acked, {rejected} rejected \
                 of {lines}",
                start.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds("/proc/self/stat")? - cpu0;
    let sink_cpu = cpu_seconds(&sink_stat)? - sink0;
    let machine_busy = machine_busy_seconds()? - machine0;
    let run = Run {
        seconds,
        cpu,
        sink_cpu,
        machine_busy,
        peak_rss_kib: peak_rss_kib()?,
        bytes_read: m.bytes_read.get(),
        read_paused: m.read_paused_seconds.get(),
        retries: m.retries.get(),
    };
    tailer.shutdown().await.context("stopping the tailer")?;
    Ok(run)
}

fn report(args: &BenchArgs, run: &Run, sink: &serde_json::Value) -> anyhow::Result<()> {
    let lines = args.lines as f64;
    let bytes = args.lines * args.line_bytes as u64;
    let mb_s = bytes as f64 / run.seconds / 1e6;
    let others = (run.machine_busy - run.cpu - run.sink_cpu).max(0.0) / run.seconds;
    let summary = serde_json::json!({
        "lines": args.lines,
        "files": args.files,
        "line_bytes": args.line_bytes,
        "bytes": bytes,
        "gzip": args.gzip,
        "batch": args.batch,
        "in_flight": args.in_flight,
        "seconds": run.seconds,
        "lines_per_s": (lines / run.seconds).round(),
        "mb_per_s": mb_s,
        "mib_per_s": bytes as f64 / run.seconds / 1_048_576.0,
        "tailer_cpu_s": run.cpu,
        "tailer_cores": run.cpu / run.seconds,
        "tailer_cpu_ns_per_line": run.cpu * 1e9 / lines,
        "tailer_peak_rss_mib": run.peak_rss_kib as f64 / 1024.0,
        "read_paused_s": run.read_paused,
        "retries": run.retries,
        "bytes_read": run.bytes_read,
        "sink_cpu_s": run.sink_cpu,
        "sink_events": sink["events"],
        "sink_requests": sink["requests"],
        "sink_bytes_received": sink["bytes_received"],
        "machine_busy_cores": run.machine_busy / run.seconds,
        "other_processes_cores": others,
    });
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} lines of {} B = {:.1} MB in {} file(s); gzip {}, batch {}, {} in flight",
        args.lines,
        args.line_bytes,
        bytes as f64 / 1e6,
        args.files,
        if args.gzip { "on" } else { "off" },
        args.batch,
        args.in_flight
    )?;
    writeln!(
        out,
        "  {:.2} s = {:.0} lines/s = {mb_s:.1} MB/s ({:.1} MiB/s)",
        run.seconds,
        lines / run.seconds,
        bytes as f64 / run.seconds / 1_048_576.0
    )?;
    writeln!(
        out,
        "  tailer: {:.2} CPU s ({:.2} cores) = {:.0} ns CPU/line, peak RSS {:.1} MiB, reading paused {:.2} s, \
         {} retries",
        run.cpu,
        run.cpu / run.seconds,
        run.cpu * 1e9 / lines,
        run.peak_rss_kib as f64 / 1024.0,
        run.read_paused,
        run.retries
    )?;
    writeln!(
        out,
        "  sink:   {:.2} CPU s ({:.2} cores); {} events in {} requests, {} body bytes",
        run.sink_cpu,
        run.sink_cpu / run.seconds,
        sink["events"],
        sink["requests"],
        sink["bytes_received"]
    )?;
    writeln!(
        out,
        "  machine: {:.2} of {} cores busy, {others:.2} cores by other processes{}",
        run.machine_busy / run.seconds,
        std::thread::available_parallelism().map_or(0, usize::from),
        if others > 0.1 { " (NOT QUIET: figures are suspect)" } else { "" }
    )?;
    if args.json {
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
    let mut busy = 0;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    for (i, v) in line.split_whitespace().skip(1).take(8).enumerate() {
        if i != 3 && i != 4 {
            busy += v.parse::<u64>().context("parsing /proc/stat")?;
        }
    }
    Ok(busy as f64 / USER_HZ)
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
    let kib = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim();
    kib.parse().context("parsing VmHWM")
}

// ---------------------------------------------------------------------------------------------
// Sink
// ---------------------------------------------------------------------------------------------

fn sink() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.context("binding the sink")?;
        let sink = IngestSink::start_on(listener, SinkOptions::default().with_record(false)).await;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", sink.addr())?;
            out.flush()?;
        }
        // Stop when the parent closes our stdin (or dies).
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink()))
            .await??;
        let stats = sink.stats();
        let totals = serde_json::json!({
            "events": stats.events_accepted,
            "requests": stats.requests,
            "bytes_received": stats.bytes_received,
            "cpu_seconds": cpu_seconds("/proc/self/stat")?,
        });
        let mut out = std::io::stdout().lock();
        writeln!(out, "{totals}")?;
        out.flush()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_asked_length_and_parse() {
        let mut rng = fastrand::Rng::with_seed(1);
        for (seq, len) in [(0, 200), (4_999_999, 200), (123_456_789_012, 200), (7, 1000)] {
            let mut buf = Vec::new();
            write_line(&mut buf, seq, len, &mut rng).expect("fits");
            assert_eq!(buf.len(), len, "{seq}");
            assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
            assert!(String::from_utf8(buf).expect("utf-8").contains(&format!("\tseq={seq}\t")));
        }
        assert!(write_line(&mut Vec::new(), 0, 100, &mut rng).is_err());
        let mut rule = ParseRule::default();
        rule.tag = Some(TAG.into());
        check_line(200, &rule, &Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/registry.toml"))
            .expect("the tailer parses the line");
    }
}
