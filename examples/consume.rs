//! Consumption throughput: pre-fills a subscription, then consumes it with `pubsub-client`'s
//! subscriber and reports messages/s and CPU per message. With `--compare-python` the same
//! backlog is also consumed, from a second subscription, by Google's official Python client
//! (streaming pull), measured the same way, and the ratio is printed.
//!
//! ```text
//! PUBSUB_EMULATOR_HOST=127.0.0.1:8085 cargo run --release -p examples --example consume -- --messages 100000
//! ```
//!
//! CPU time is read from `/proc/self/stat` (user + system, all threads; Linux only).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use pubsub_client::{Client, Message, PublisherConfig, SubscriberConfig, Subscription, Topic};

#[derive(Parser, Debug)]
#[command(about = "Measure subscriber throughput against a pre-filled subscription")]
struct Args {
    /// Project.
    #[arg(long, env = "PUBSUB_PROJECT_ID", default_value = "eventpipe-local")]
    project: String,
    /// Messages to pre-fill and consume.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 150)]
    payload_bytes: usize,
    /// Pulls in flight.
    #[arg(long, default_value_t = 4)]
    pull_concurrency: usize,
    /// Most messages outstanding.
    #[arg(long, default_value_t = 10_000)]
    max_outstanding: usize,
    /// Also consume the same backlog with Google's Python client (needs google-cloud-pubsub).
    #[arg(long)]
    compare_python: bool,
    /// Python interpreter for --compare-python.
    #[arg(long, env = "EVENTPIPE_PYTHON", default_value = "python3")]
    python: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client =
        Client::builder().with_project(&args.project).build().await.context("building the client")?;
    let topic = format!("consume-bench-{}", std::process::id());
    let ours = format!("{topic}-ours");
    let theirs = format!("{topic}-python");
    client.create_topic(&Topic::new(&topic)).await?;
    client.create_subscription(&Subscription::new(&ours, &topic).with_ack_deadline_seconds(60)).await?;
    if args.compare_python {
        client.create_subscription(&Subscription::new(&theirs, &topic).with_ack_deadline_seconds(60)).await?;
    }
    prefill(&client, &topic, args.messages, args.payload_bytes).await?;

    let config = SubscriberConfig::default()
        .with_pull_concurrency(args.pull_concurrency)
        .with_max_outstanding_messages(args.max_outstanding);
    let cpu0 = cpu_seconds()?;
    let start = Instant::now();
    let mut subscriber = client.subscriber_with_config(&ours, config)?;
    let mut acks = Vec::with_capacity(args.messages);
    let mut received = 0;
    while received < args.messages {
        let d = tokio::time::timeout(Duration::from_secs(60), subscriber.next())
            .await
            .context("no message for 60 s")?
            .context("subscriber stopped")??;
        received += 1;
        acks.push(d.ack());
    }
    for a in acks {
        a.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu0;
    let stats = subscriber.shutdown(Duration::from_secs(5)).await;
    let ours_rate = args.messages as f64 / elapsed;
    let ours_cpu_us = cpu * 1e6 / args.messages as f64;
    println!(
        "pubsub-client: {} messages in {elapsed:.2} s = {ours_rate:.0} msg/s, {cpu:.2} CPU s = {ours_cpu_us:.1} µs CPU/msg ({} pulls, peak outstanding {})",
        args.messages, stats.pulls, stats.peak_outstanding_messages
    );
    if args.compare_python {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("official_python_consume.py");
        let out = Command::new(&args.python)
            .arg(&script)
            .args([&args.project, &theirs, &args.messages.to_string()])
            .output()
            .with_context(|| format!("running {}", args.python))?;
        if !out.status.success() {
            bail!("python consumer failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("python output")?;
        let (secs, py_cpu) =
            (v["seconds"].as_f64().unwrap_or(f64::NAN), v["cpu_seconds"].as_f64().unwrap_or(f64::NAN));
        let rate = args.messages as f64 / secs;
        let cpu_us = py_cpu * 1e6 / args.messages as f64;
        println!(
            "official Python client (streaming pull): {} messages in {secs:.2} s = {rate:.0} msg/s, {py_cpu:.2} CPU s = {cpu_us:.1} µs CPU/msg",
            args.messages
        );
        println!(
            "ratio: pubsub-client is {:.2}x the throughput at {:.1}x less CPU per message",
            ours_rate / rate,
            cpu_us / ours_cpu_us
        );
    }
    client.delete_subscription(&ours).await.ok();
    client.delete_subscription(&theirs).await.ok();
    client.delete_topic(&topic).await.ok();
    Ok(())
}

async fn prefill(client: &Client, topic: &str, n: usize, size: usize) -> anyhow::Result<()> {
    let publisher = client.publisher_with_config(topic, PublisherConfig::default())?;
    let payload = "x".repeat(size);
    let mut handles = Vec::with_capacity(10_000);
    for i in 0..n {
        handles.push(
            publisher.publish(&Message::new(payload.clone()).with_attribute("seq", i.to_string())).await?,
        );
        if handles.len() == handles.capacity() {
            for h in handles.drain(..) {
                h.await?;
            }
        }
    }
    for h in handles {
        h.await?;
    }
    publisher.shutdown().await;
    Ok(())
}

/// CPU time of this process (user + system, all threads) from `/proc/self/stat`, in seconds.
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("unexpected /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // USER_HZ is 100 on Linux.
    Ok(ticks as f64 / 100.0)
}
