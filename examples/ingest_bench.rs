//! Throughput of the event-service's ingest + publish path: events/s, and CPU time per event of
//! the service, with the publisher pointed at a Pub/Sub sink that is not the bottleneck.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target cargo build --release -p examples --example ingest_bench
//! /work/target/release/examples/ingest_bench --encoding protobuf --batch 1000 --concurrency 16 --duration 20
//! ```
//!
//! (or `cargo run --release -p examples --example ingest_bench -- --encoding protobuf ...`).
//! Results are in `BENCHMARKS.md`, "Ingest + publish throughput".
//!
//! One binary, three roles (the first argument):
//!
//! * no role (the orchestrator): starts `sink` as a child process, writes a registry with one
//!   `play` type (topic `events-play`, fields `user`, `track`, `ms_played`), starts the
//!   event-service **in this process** (`event_service::Service::start`, default limits, the
//!   publisher's delay and requests in flight from `--delay-ms` / `--publisher-in-flight`)
//!   with its publisher pointed at the sink, waits for `/readyz`, runs `load` as a child
//!   process against it, and prints events/s, the service's CPU seconds and CPU µs per event
//!   (this process holds only the service, so its CPU is the service's), the generator's and
//!   the sink's CPU, the service's peak RSS (`VmHWM`), and how busy the whole machine was: CPU
//!   used by other processes during the run is reported, and flagged when it makes the run
//!   suspect. `--json` prints one JSON line instead.
//! * `sink --port P`: a minimal HTTP/1.1 stand-in for the Pub/Sub REST API: `GET` of a topic
//!   answers 200, `POST …:publish` counts the messages of the body (occurrences of `{"data":`)
//!   and answers that many message ids, anything else 404. `--port 0` picks a free port; the
//!   first stdout line is the address. It stops when its stdin closes (or on SIGTERM) and
//!   prints its totals and its CPU seconds as one JSON line. It does not decompress, so the
//!   service's publish gzip stays off.
//! * `load --url URL --token T --encoding protobuf|json|ndjson --batch N --concurrency C
//!   --duration SECS`: builds one request body of N "play" events once, then C loops (one
//!   HTTP/1.1 connection each) POST it to `URL/v1/events` for the duration, counting the events
//!   the service accepted (`{"accepted": n}`) and non-200 answers, and prints
//!   `{"events", "requests", "errors", "seconds", "cpu_seconds", "body_bytes"}` as one JSON line.
//!
//! The load generator and the sink run on the same machine and compete with the service for
//! its cores; their CPU is reported so it can be told apart. CPU is user + system time of all
//! threads from `/proc/<pid>/stat` (Linux only, `USER_HZ` = 100).

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use event_model::{Event, EventBatch, Value, ValueKind, format_rfc3339, timestamp_from_system_time};
use event_service::{Config, MirrorConfig, Service};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::server::conn::http1 as server_http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use loadtest::null_sink::{count_messages, message_ids};
use prost::Message as _;
use tokio::net::{TcpListener, TcpStream};

/// The bearer token the orchestrator configures and hands to the load generator.
const TOKEN: &str = "ingest-bench-token-0123456789";
/// The topic of the benchmark's only event type.
const TOPIC: &str = "events-play";
/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`; 100 on Linux).
const USER_HZ: f64 = 100.0;

#[derive(Parser, Debug)]
#[command(about = "Ingest + publish throughput of the event-service against a Pub/Sub sink")]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Subcommand, Debug)]
enum Role {
    /// A minimal Pub/Sub REST stand-in that counts published messages.
    Sink {
        /// Port on 127.0.0.1 (0: a free one; the address is the first line on stdout).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// The load generator.
    Load(LoadArgs),
}

#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// Request body encoding.
    #[arg(long, value_enum, default_value_t = Encoding::Protobuf)]
    encoding: Encoding,
    /// Events per request.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Requests in flight (one connection each).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// The service's publisher batch delay in milliseconds.
    #[arg(long, default_value_t = 5)]
    delay_ms: u64,
    /// The service's publish requests in flight per topic.
    #[arg(long, default_value_t = 32)]
    publisher_in_flight: usize,
    /// Dark-loading mirror: `none`, `sink` (mirrored to the same sink) or `stalled` (a
    /// mirror target that accepts connections and never answers).
    #[arg(long, value_enum, default_value_t = MirrorMode::None)]
    mirror: MirrorMode,
    /// The mirror's queue (`mirror.queue_events`); default: the service's default.
    #[arg(long)]
    mirror_queue_events: Option<usize>,
    /// Print one JSON line instead of the readable summary.
    #[arg(long)]
    json: bool,
}

/// Where the service mirrors accepted events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MirrorMode {
    /// No mirror.
    None,
    /// Mirrored to the sink, under a topic prefix.
    Sink,
    /// A mirror target that never answers.
    Stalled,
}

#[derive(clap::Args, Debug)]
struct LoadArgs {
    /// Base URL of the event-service, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// Bearer token.
    #[arg(long)]
    token: String,
    /// Request body encoding.
    #[arg(long, value_enum, default_value_t = Encoding::Protobuf)]
    encoding: Encoding,
    /// Events per request.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Requests in flight (one connection each).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    duration: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Encoding {
    /// `application/x-protobuf`: an `EventBatch`.
    Protobuf,
    /// `application/json`: a JSON array.
    Json,
    /// `application/x-ndjson`: one JSON event per line.
    Ndjson,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Protobuf => "protobuf",
            Encoding::Json => "json",
            Encoding::Ndjson => "ndjson",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
            Encoding::Ndjson => "application/x-ndjson",
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.role {
        Some(Role::Sink { port }) => current_thread()?.block_on(sink(port)),
        Some(Role::Load(args)) => current_thread()?.block_on(load(args)),
        None => orchestrate(cli.bench),
    }
}

fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("building the runtime")
}

// ---------------------------------------------------------------------------------------------
// Orchestrator
// ---------------------------------------------------------------------------------------------

fn orchestrate(args: BenchArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let exe = std::env::current_exe().context("finding this executable")?;
    let dir = std::env::temp_dir().join(format!("ingest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let registry = dir.join("registry.toml");
    std::fs::write(
        &registry,
        format!(
            "[types.play]\ntopic = \"{TOPIC}\"\nversion = 1\n\
             fields.user = {{ type = \"string\", required = true }}\n\
             fields.track = {{ type = \"string\", required = true }}\n\
             fields.ms_played = {{ type = \"int\" }}\n"
        ),
    )
    .with_context(|| format!("writing {}", registry.display()))?;

    let mut sink = StdCommand::new(&exe)
        .args(["sink", "--port", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the sink")?;
    let sink_pid = sink.id();
    let mut sink_out = BufReader::new(sink.stdout.take().context("sink stdout")?);
    let mut line = String::new();
    sink_out.read_line(&mut line).context("reading the sink's address")?;
    let sink_addr: SocketAddr =
        line.trim().parse().with_context(|| format!("sink printed {line:?}, not an address"))?;

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(run_bench(&args, &exe, &registry, sink_addr));
    drop(runtime);

    // Closing its stdin stops the sink, which prints its totals.
    drop(sink.stdin.take());
    line.clear();
    sink_out.read_line(&mut line).context("reading the sink's totals")?;
    let status = sink.wait().context("waiting for the sink")?;
    let _ = std::fs::remove_dir_all(&dir);
    let run = result?;
    let sink_totals: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("sink (pid {sink_pid}, {status}) printed {line:?}"))?;
    report(&args, &run, &sink_totals)
}

/// What one run measured in the orchestrator.
struct Run {
    load: serde_json::Value,
    service_cpu: f64,
    /// Busy CPU seconds of the whole machine (all processes) over the same window.
    machine_busy: f64,
    peak_rss_kib: u64,
    batches: u64,
    publish_requests: u64,
    published: u64,
    /// Events the mirror confirmed, and those it dropped (queue full), during the run.
    mirrored: u64,
    mirror_dropped: u64,
}

async fn run_bench(args: &BenchArgs, exe: &Path, registry: &Path, sink: SocketAddr) -> anyhow::Result<Run> {
    let mut config = Config::default();
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.project = "bench".into();
    config.registry = registry.to_path_buf();
    config.emulator_host = Some(sink.to_string());
    config.auth.tokens = vec![TOKEN.into()];
    config.shutdown_timeout_secs = 10;
    config.publisher.delay_ms = args.delay_ms;
    config.publisher.max_in_flight_requests = args.publisher_in_flight;
    // Held for the whole run: its connections are accepted by the kernel and never answered.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    config.mirror = match args.mirror {
        MirrorMode::None => None,
        MirrorMode::Sink => Some(MirrorConfig::new("mirror-")),
        MirrorMode::Stalled => {
            let mut m = MirrorConfig::new("mirror-");
            m.emulator_host = Some(stalled.local_addr()?.to_string());
            Some(m)
        }
    };
    if let (Some(m), Some(n)) = (config.mirror.as_mut(), args.mirror_queue_events) {
        m.queue_events = n;
    }
    let service = Service::start(config).await.context("starting the event-service")?;
    let addr = service.local_addr();
    wait_ready(addr, Duration::from_secs(20)).await?;

    let cpu0 = cpu_seconds(Path::new("/proc/self/stat"))?;
    let machine0 = machine_busy_seconds()?;
    let output = tokio::process::Command::new(exe)
        .arg("load")
        .args(["--url", &format!("http://{addr}"), "--token", TOKEN])
        .args(["--encoding", args.encoding.name()])
        .args(["--batch", &args.batch.to_string()])
        .args(["--concurrency", &args.concurrency.to_string()])
        .args(["--duration", &args.duration.to_string()])
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .context("running the load generator")?;
    let service_cpu = cpu_seconds(Path::new("/proc/self/stat"))? - cpu0;
    let machine_busy = machine_busy_seconds()? - machine0;
    let peak_rss_kib = peak_rss_kib()?;
    if !output.status.success() {
        bail!("the load generator failed: {}", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let load: serde_json::Value =
        serde_json::from_str(stdout.trim()).with_context(|| format!("load generator printed {stdout:?}"))?;
    let stats = service.state().publishers.get(TOPIC).context("the service's publisher")?.stats();
    let metrics = &service.state().metrics;
    let (mirrored, mirror_dropped) = (metrics.mirrored.get(), metrics.mirror_dropped.get());
    service.shutdown().await;
    Ok(Run {
        load,
        service_cpu,
        machine_busy,
        peak_rss_kib,
        batches: stats.batches_published,
        publish_requests: stats.requests,
        published: stats.messages_published,
        mirrored,
        mirror_dropped,
    })
}

fn report(args: &BenchArgs, run: &Run, sink: &serde_json::Value) -> anyhow::Result<()> {
    let num = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let events = num(&run.load, "events");
    let seconds = num(&run.load, "seconds");
    let rate = events / seconds;
    let per_event_us = |cpu: f64| cpu * 1e6 / events;
    let load_cpu = num(&run.load, "cpu_seconds");
    let sink_cpu = num(sink, "cpu_seconds");
    // CPU used by processes other than the three of the benchmark (the sink's startup is in
    // its total, so this slightly undercounts); more than a few percent makes the run suspect.
    let others = (run.machine_busy - run.service_cpu - load_cpu - sink_cpu).max(0.0);
    let summary = serde_json::json!({
        "encoding": args.encoding.name(),
        "batch": args.batch,
        "concurrency": args.concurrency,
        "delay_ms": args.delay_ms,
        "events": events,
        "requests": run.load["requests"],
        "errors": run.load["errors"],
        "body_bytes": run.load["body_bytes"],
        "seconds": seconds,
        "events_per_s": rate.round(),
        "service_cpu_s": run.service_cpu,
        "service_cpu_us_per_event": per_event_us(run.service_cpu),
        "service_cores": run.service_cpu / seconds,
        "load_cpu_s": load_cpu,
        "load_cpu_us_per_event": per_event_us(load_cpu),
        "sink_cpu_s": sink_cpu,
        "sink_cpu_us_per_event": per_event_us(sink_cpu),
        "sink_messages": sink["messages"],
        "published": run.published,
        "mirror": format!("{:?}", args.mirror).to_lowercase(),
        "mirrored": run.mirrored,
        "mirror_dropped": run.mirror_dropped,
        "publish_batches": run.batches,
        "publish_requests": run.publish_requests,
        "service_peak_rss_mib": run.peak_rss_kib as f64 / 1024.0,
        "machine_busy_cores": run.machine_busy / seconds,
        "other_processes_cores": others / seconds,
    });
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{summary}")?;
        return Ok(());
    }
    writeln!(
        out,
        "encoding {}, batch {}, concurrency {}, publisher delay {} ms, mirror {:?} ({} mirrored, {} dropped)",
        args.encoding.name(),
        args.batch,
        args.concurrency,
        args.delay_ms,
        args.mirror,
        run.mirrored,
        run.mirror_dropped
    )?;
    writeln!(
        out,
        "  {events:.0} events accepted in {seconds:.2} s = {rate:.0} events/s ({} requests of {} bytes, {} errors)",
        run.load["requests"], run.load["body_bytes"], run.load["errors"]
    )?;
    writeln!(
        out,
        "  service:   {:.2} CPU s = {:.2} µs CPU/event ({:.2} cores), peak RSS {:.1} MiB",
        run.service_cpu,
        per_event_us(run.service_cpu),
        run.service_cpu / seconds,
        run.peak_rss_kib as f64 / 1024.0
    )?;
    writeln!(
        out,
        "  generator: {load_cpu:.2} CPU s = {:.2} µs CPU/event; sink: {sink_cpu:.2} CPU s = {:.2} µs CPU/event",
        per_event_us(load_cpu),
        per_event_us(sink_cpu)
    )?;
    writeln!(
        out,
        "  machine:   {:.2} of {} cores busy, {:.2} cores by other processes{}",
        run.machine_busy / seconds,
        std::thread::available_parallelism().map_or(0, usize::from),
        others / seconds,
        if others / seconds > 0.1 { " (NOT QUIET: figures are suspect)" } else { "" }
    )?;
    let per_batch = if run.batches > 0 { run.published as f64 / run.batches as f64 } else { 0.0 };
    writeln!(
        out,
        "  publisher: {} messages in {} batches ({per_batch:.0} per batch, {} requests); sink counted {}",
        run.published, run.batches, run.publish_requests, sink["messages"]
    )?;
    Ok(())
}

/// Polls `/readyz` until it answers 200 or the deadline passes.
async fn wait_ready(addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let last = match get_status(addr, "/readyz").await {
            Ok(StatusCode::OK) => return Ok(()),
            Ok(s) => format!("status {s}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("the event-service was not ready within {within:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_status(addr: SocketAddr, path: &str) -> anyhow::Result<StatusCode> {
    let mut sender = connect(addr).await?;
    let req = Request::get(path).header(HOST, addr.to_string()).body(Full::new(Bytes::new()))?;
    Ok(sender.send_request(req).await?.status())
}

/// User + system CPU seconds of a process, from its `/proc/<pid>/stat`.
fn cpu_seconds(stat: &Path) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(stat).with_context(|| format!("reading {}", stat.display()))?;
    // Fields 14 (utime) and 15 (stime) are the 12th and 13th after the `)` that ends field 2.
    let rest = text.rsplit_once(')').map(|(_, r)| r).context("unexpected /proc/<pid>/stat")?;
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || -> anyhow::Result<f64> {
        Ok(fields.next().context("short /proc/<pid>/stat")?.parse::<u64>()? as f64)
    };
    let ticks = next()? + next()?;
    Ok(ticks / USER_HZ)
}

/// Busy CPU seconds of the whole machine since boot (all CPUs; `/proc/stat` minus idle and iowait).
fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().find(|l| l.starts_with("cpu ")).context("no cpu line in /proc/stat")?;
    let mut busy = 0.0;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    for (i, v) in line.split_whitespace().skip(1).take(8).enumerate() {
        if i != 3 && i != 4 {
            busy += v.parse::<u64>().context("parsing /proc/stat")? as f64;
        }
    }
    Ok(busy / USER_HZ)
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
    let kib = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim();
    kib.parse().context("parsing VmHWM")
}

fn self_cpu_seconds() -> f64 {
    cpu_seconds(Path::new("/proc/self/stat")).unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------------------------------------
// Sink: just enough of the Pub/Sub REST API
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct SinkCounters {
    messages: AtomicU64,
    requests: AtomicU64,
}

async fn sink(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.context("binding the sink")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", listener.local_addr()?)?;
        out.flush()?;
    }
    let counters = Arc::new(SinkCounters::default());
    // Stop when the parent closes our stdin (or dies), or on SIGTERM.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = stop_tx.send(());
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let accept = async {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sink: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let counters = counters.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| sink_answer(req, counters.clone()));
                let _ = server_http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    };
    tokio::select! {
        () = accept => {}
        _ = stop_rx => {}
        _ = term.recv() => {}
    }
    let totals = serde_json::json!({
        "messages": counters.messages.load(Ordering::Relaxed),
        "requests": counters.requests.load(Ordering::Relaxed),
        "cpu_seconds": self_cpu_seconds(),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{totals}")?;
    out.flush()?;
    eprintln!("sink: {totals}");
    Ok(())
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}

async fn sink_answer(
    req: Request<Incoming>,
    counters: Arc<SinkCounters>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let is_topic = path.starts_with("/v1/projects/") && path.contains("/topics/");
    if req.method() == Method::POST
        && is_topic
        && (path.ends_with(":publish") || path.ends_with("%3Apublish"))
    {
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return Ok(json_response(StatusCode::BAD_REQUEST, format!("{{\"error\":\"{e}\"}}"))),
        };
        let n = count_messages(&body);
        let first = counters.messages.fetch_add(n as u64, Ordering::Relaxed);
        counters.requests.fetch_add(1, Ordering::Relaxed);
        return Ok(json_response(StatusCode::OK, message_ids(first, n)));
    }
    if req.method() == Method::GET && is_topic {
        let name = path.trim_start_matches("/v1/");
        return Ok(json_response(StatusCode::OK, format!("{{\"name\":\"{name}\"}}")));
    }
    Ok(json_response(StatusCode::NOT_FOUND, r#"{"error":{"code":404,"status":"NOT_FOUND"}}"#))
}

// ---------------------------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct LoadCounters {
    events: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
}

async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let authority = args
        .url
        .strip_prefix("http://")
        .context("--url must start with http://")?
        .trim_end_matches('/')
        .to_owned();
    let addr: SocketAddr = tokio::net::lookup_host(&authority)
        .await
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to nothing"))?;
    let body = Bytes::from(request_body(args.encoding, args.batch));
    let auth = format!("Bearer {}", args.token);
    let counters = Arc::new(LoadCounters::default());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration);
    let mut tasks = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let (body, auth, authority, counters) =
            (body.clone(), auth.clone(), authority.clone(), counters.clone());
        tasks.push(tokio::spawn(async move {
            load_loop(addr, authority, args.encoding, body, auth, deadline, counters).await
        }));
    }
    for t in tasks {
        t.await.context("a load task panicked")?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let line = serde_json::json!({
        "events": counters.events.load(Ordering::Relaxed),
        "requests": counters.requests.load(Ordering::Relaxed),
        "errors": counters.errors.load(Ordering::Relaxed),
        "seconds": seconds,
        "cpu_seconds": self_cpu_seconds(),
        "body_bytes": body.len(),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// One connection's loop: POST the body until the deadline, reconnecting after transport errors.
async fn load_loop(
    addr: SocketAddr,
    authority: String,
    encoding: Encoding,
    body: Bytes,
    auth: String,
    deadline: Instant,
    counters: Arc<LoadCounters>,
) {
    let mut reported = false;
    'connect: while Instant::now() < deadline {
        let mut sender = match connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                if !reported {
                    eprintln!("load: cannot connect to {addr}: {e:#}");
                    reported = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while Instant::now() < deadline {
            let req = Request::post("/v1/events")
                .header(HOST, authority.as_str())
                .header(CONTENT_TYPE, encoding.content_type())
                .header(AUTHORIZATION, auth.as_str())
                .body(Full::new(body.clone()));
            let Ok(req) = req else { return };
            let answer = match sender.send_request(req).await {
                Ok(r) => {
                    let status = r.status();
                    r.into_body().collect().await.map(|b| (status, b.to_bytes()))
                }
                Err(e) => Err(e),
            };
            counters.requests.fetch_add(1, Ordering::Relaxed);
            match answer {
                Ok((StatusCode::OK, b)) => {
                    counters.events.fetch_add(accepted(&b), Ordering::Relaxed);
                }
                Ok((status, b)) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    if !reported {
                        eprintln!("load: {status}: {}", String::from_utf8_lossy(&b));
                        reported = true;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    if !reported {
                        eprintln!("load: request failed: {e}");
                        reported = true;
                    }
                    continue 'connect;
                }
            }
        }
    }
}

/// An HTTP/1.1 connection to `addr`, driven by its own task.
async fn connect(addr: SocketAddr) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// The `accepted` count of a `{"accepted": n, "rejected": [...]}` answer (0 if absent).
fn accepted(body: &[u8]) -> u64 {
    const KEY: &[u8] = b"\"accepted\":";
    let Some(at) = body.windows(KEY.len()).position(|w| w == KEY) else { return 0 };
    body[at + KEY.len()..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .fold(0, |n, &d| n * 10 + u64::from(d - b'0'))
}

/// One play event, the same in every encoding: an id, type, event time, source and three fields.
struct Play {
    id: String,
    user: String,
    track: String,
    ms_played: i64,
}

fn plays(n: usize) -> Vec<Play> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..n)
        .map(|i| Play {
            id: format!("bench-{:016x}-{i:06}", rng.u64(..)),
            user: format!("user-{:08}", rng.u32(..50_000_000)),
            track: format!(
                "spotify:track:{}",
                std::iter::repeat_with(|| rng.alphanumeric()).take(22).collect::<String>()
            ),
            ms_played: rng.i64(1_000..600_000),
        })
        .collect()
}

/// One request body of `n` play events.
fn request_body(encoding: Encoding, n: usize) -> Vec<u8> {
    let now = timestamp_from_system_time(SystemTime::now());
    let source = "bench-host-01";
    match encoding {
        Encoding::Protobuf => {
            let events = plays(n)
                .into_iter()
                .map(|p| {
                    let mut e = Event {
                        id: p.id,
                        r#type: "play".into(),
                        event_time: Some(now),
                        source: source.into(),
                        ..Default::default()
                    };
                    let text = |s: String| Value { kind: Some(ValueKind::StringValue(s)) };
                    e.fields.insert("user".into(), text(p.user));
                    e.fields.insert("track".into(), text(p.track));
                    e.fields
                        .insert("ms_played".into(), Value { kind: Some(ValueKind::IntValue(p.ms_played)) });
                    e
                })
                .collect();
            EventBatch { events }.encode_to_vec()
        }
        Encoding::Json | Encoding::Ndjson => {
            let time = format_rfc3339(&now);
            let lines: Vec<String> = plays(n)
                .into_iter()
                .map(|p| {
                    serde_json::json!({
                        "id": p.id,
                        "type": "play",
                        "event_time": time,
                        "source": source,
                        "fields": {"user": p.user, "track": p.track, "ms_played": p.ms_played},
                    })
                    .to_string()
                })
                .collect();
            if encoding == Encoding::Json {
                format!("[{}]", lines.join(",")).into_bytes()
            } else {
                let mut s = lines.join("\n");
                s.push('\n');
                s.into_bytes()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_counted_by_their_fragments() {
        let body = br#"{"messages":[{"data":"YQ==","attributes":{"k":"v"}},{"data":"Yg=="}]}"#;
        assert_eq!(count_messages(body), 2);
        assert_eq!(count_messages(b"{\"messages\":[]}"), 0);
        for pad in 0..20 {
            let padded = format!("{}{}", " ".repeat(pad), std::str::from_utf8(body).expect("utf-8"));
            assert_eq!(count_messages(padded.as_bytes()), 2, "{pad}");
        }
        assert_eq!(message_ids(5, 2), br#"{"messageIds":["6","7"]}"#);
    }

    #[test]
    fn the_accepted_count_is_read() {
        assert_eq!(accepted(br#"{"accepted":500,"rejected":[]}"#), 500);
        assert_eq!(accepted(br#"{"error":"x"}"#), 0);
    }

    #[test]
    fn bodies_have_n_events() {
        let pb = request_body(Encoding::Protobuf, 3);
        assert_eq!(EventBatch::decode(&pb[..]).expect("decodes").events.len(), 3);
        let json: serde_json::Value = serde_json::from_slice(&request_body(Encoding::Json, 3)).expect("json");
        assert_eq!(json.as_array().map(Vec::len), Some(3));
        let nd = request_body(Encoding::Ndjson, 3);
        assert_eq!(nd.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 3);
    }
}
