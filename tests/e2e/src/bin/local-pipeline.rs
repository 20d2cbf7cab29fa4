//! `local-pipeline`: the whole pipeline on this machine, on embedded defaults.
//!
//! Writes a sample log (play and search events at 7:3 over two past hours, with bad lines),
//! runs tailer -> event-service -> Pub/Sub emulator -> exporter -> local hourly buckets, waits
//! until every hour is closed, checks the buckets against what was written, prints a summary
//! and leaves the buckets on disk. Exits 1 when anything was lost, duplicated or miscounted.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::Parser;
use e2e::{Binaries, Component, LogGen, LogOptions, Pipeline, PipelineOptions, Rejections, Summary};

/// Marks a directory as one this program may clear for a new run.
const MARKER: &str = ".local-pipeline";
/// How often the log is written to while pacing.
const TICK: Duration = Duration::from_millis(10);

#[derive(Parser, Debug)]
#[command(name = "local-pipeline", about = "Runs the whole event pipeline locally and checks the buckets")]
struct Args {
    /// Valid events to write (bad lines come on top: one line in 100).
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Lines written per second (0 = as fast as possible).
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Work directory: configs, the log, the checkpoint, process logs and the buckets. It is
    /// cleared first if an earlier run made it.
    #[arg(long, default_value = "target/local-pipeline")]
    out: PathBuf,
    /// Where the tailer, event-service and exporter binaries are (default: beside this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Pub/Sub emulator to use (default: PUBSUB_EMULATOR_HOST, else one is started).
    #[arg(long, env = "PUBSUB_EMULATOR_HOST")]
    emulator_host: Option<String>,
    /// Seconds without new events after which the exporter closes past hours (keep it above
    /// the subscriptions' 10 s ack deadline).
    #[arg(long, default_value_t = 12)]
    idle_secs: u64,
    /// Print one JSON object as the last line of output.
    #[arg(long)]
    json: bool,
}

fn prepare_out(out: &PathBuf) -> anyhow::Result<()> {
    if out.exists() {
        let empty = std::fs::read_dir(out)?.next().is_none();
        if !empty && !out.join(MARKER).exists() {
            bail!("{} exists and was not made by local-pipeline; choose another --out", out.display());
        }
        std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join(MARKER), "made by local-pipeline; cleared by its next run\n")?;
    Ok(())
}

async fn progress(p: &Pipeline, log: &LogGen) -> String {
    let m = |c, n| async move { p.metric(c, n).await.unwrap_or(0.0) as u64 };
    format!(
        "written {} | tailer acked {} | service accepted {} | exporter wrote {} | hours closed {}",
        log.written().len(),
        m(Component::Tailer, "tailer_events_acked_total").await,
        m(Component::Service, "event_service_events_accepted_total").await,
        m(Component::Exporter, "exporter_events_written_total").await,
        m(Component::Exporter, "exporter_hours_closed_total").await,
    )
}

async fn run(args: Args) -> anyhow::Result<Summary> {
    let out = std::path::absolute(&args.out)?;
    prepare_out(&out)?;
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().context("binary has no directory")?.to_path_buf(),
    };
    let bins = Binaries::in_dir(&bin_dir)?;
    let mut opts = PipelineOptions::new(&out).with_idle_secs(args.idle_secs);
    if let Some(h) = &args.emulator_host {
        opts = opts.with_emulator_host(h);
    } else {
        eprintln!("starting the Pub/Sub emulator (takes a few seconds)");
    }
    let mut p = Pipeline::start(opts, &bins).await?;
    eprintln!(
        "pipeline up: tailer -> event-service ({}) -> Pub/Sub ({}) -> exporter -> {}",
        p.service_url(),
        p.emulator_host(),
        p.buckets_dir().display()
    );
    let first_hour = e2e::sample_first_hour();
    let mut log = LogGen::create(&p.log_path(), LogOptions::new(first_hour))?;
    let started = Instant::now();
    let first_write_ms = e2e::unix_ms(SystemTime::now());
    let per_tick = if args.rate == 0 { args.events } else { (args.rate / 100).max(1) };
    let mut ticker = tokio::time::interval(TICK);
    let mut last_report = Instant::now();
    while (log.written().len() as u64) < args.events {
        ticker.tick().await;
        let n = per_tick.min(args.events - log.written().len() as u64);
        log.write(n)?;
        if last_report.elapsed() >= Duration::from_secs(2) {
            p.check_alive()?;
            eprintln!("{}", progress(&p, &log).await);
            last_report = Instant::now();
        }
    }
    eprintln!(
        "all {} events written in {:.1} s; waiting for every hour to close",
        args.events,
        started.elapsed().as_secs_f64()
    );
    let buckets = log.buckets();
    let deadline = Instant::now() + Duration::from_secs(120 + args.events / 2000);
    let mut last_report = Instant::now();
    loop {
        p.check_alive()?;
        let open = p.open_hours(&buckets).await;
        if open.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "{} of {} hours still open after the deadline; see the logs in {}",
                open.len(),
                buckets.len(),
                out.display()
            );
        }
        if last_report.elapsed() >= Duration::from_secs(3) {
            eprintln!("{}", progress(&p, &log).await);
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let closed_after = started.elapsed().as_secs_f64();
    let rejections = Rejections::scrape(&p).await?;
    let v = e2e::verify(p.store().as_ref(), log.written(), true).await?;
    p.stop().await?;
    Ok(Summary::new(
        &v,
        log.bad(),
        rejections,
        first_write_ms,
        closed_after,
        p.buckets_dir().display().to_string(),
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let json = args.json;
    let summary = tokio::select! {
        s = run(args) => s?,
        _ = tokio::signal::ctrl_c() => {
            // Dropping the pipeline (inside `run`) killed every process it started.
            eprintln!("interrupted; everything started was stopped");
            std::process::exit(130);
        }
    };
    print!("{}", summary.render());
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    if !summary.ok {
        std::process::exit(1);
    }
    Ok(())
}
