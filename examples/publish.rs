//! A service publishing play events to Pub/Sub with `pubsub-client`.
//!
//! ```text
//! PUBSUB_EMULATOR_HOST=127.0.0.1:8085 cargo run --release -p examples --example publish -- --events 100000 --verify
//! ```
//!
//! Without `PUBSUB_EMULATOR_HOST` it talks to the real service with application default
//! credentials. Ctrl-C stops publishing, drains what was accepted, and prints the statistics.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use pubsub_client::{Client, Message, Publisher, PublisherConfig, Subscription, Topic};

#[derive(Parser, Debug)]
#[command(about = "Publish play events to a Pub/Sub topic")]
struct Args {
    /// Project of the topic.
    #[arg(long, env = "PUBSUB_PROJECT_ID", default_value = "eventpipe-local")]
    project: String,
    /// Topic id (created if missing).
    #[arg(long, default_value = "events-play")]
    topic: String,
    /// How many events to publish.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Bytes of padding in each event's JSON payload.
    #[arg(long, default_value_t = 100)]
    padding: usize,
    /// Gzip request bodies of at least this many bytes.
    #[arg(long)]
    gzip_threshold: Option<usize>,
    /// Read every event back from a subscription created for the purpose, and check it.
    #[arg(long)]
    verify: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let client =
        Client::builder().with_project(&args.project).build().await.context("building the client")?;
    ensure_topic(&client, &args.topic).await?;
    let verify_sub = format!("{}-verify", args.topic);
    if args.verify {
        ensure_subscription(&client, &verify_sub, &args.topic).await?;
    }
    let mut config = PublisherConfig::default().with_delay(Duration::from_millis(5));
    if let Some(t) = args.gzip_threshold {
        config = config.with_gzip(t, 1);
    }
    let publisher = client.publisher_with_config(&args.topic, config)?;

    let start = Instant::now();
    let interrupted = tokio::select! {
        r = publish_events(&publisher, &args) => { r?; false }
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: draining what was accepted");
            true
        }
    };
    publisher.shutdown().await;
    let elapsed = start.elapsed();
    let stats = publisher.stats();
    println!(
        "published {} events in {:.2?} ({:.0}/s): {} requests, {} retries, {} failed, {} body bytes, {} wire bytes",
        stats.messages_published,
        elapsed,
        stats.messages_published as f64 / elapsed.as_secs_f64(),
        stats.requests,
        stats.retries,
        stats.messages_failed,
        stats.body_bytes,
        stats.wire_bytes
    );
    if stats.messages_failed > 0 {
        bail!("{} events failed to publish", stats.messages_failed);
    }
    if args.verify && !interrupted {
        verify(&client, &verify_sub, stats.messages_published).await?;
    }
    Ok(())
}

/// Publishes the events, awaiting the ids in chunks so memory stays flat.
async fn publish_events(publisher: &Publisher, args: &Args) -> anyhow::Result<()> {
    let host = "example-host";
    let padding = "x".repeat(args.padding);
    let mut pending = Vec::with_capacity(10_000);
    for seq in 0..args.events {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
        let payload = format!(
            r#"{{"user":"user-{}","track":"track-{}","ms_played":{},"pad":"{padding}"}}"#,
            fastrand::u32(..1_000_000),
            fastrand::u32(..100_000),
            fastrand::u32(..300_000)
        );
        let msg = Message::new(payload)
            .with_attribute("event_id", format!("{host}-{seq:012}"))
            .with_attribute("event_type", "play")
            .with_attribute("event_time_ms", now.to_string());
        pending.push(publisher.publish(&msg).await?);
        if pending.len() == pending.capacity() {
            for h in pending.drain(..) {
                h.await?;
            }
        }
    }
    for h in pending {
        h.await?;
    }
    Ok(())
}

async fn ensure_topic(client: &Client, topic: &str) -> anyhow::Result<()> {
    match client.create_topic(&Topic::new(topic)).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(e).context(format!("creating topic {topic}")),
    }
}

async fn ensure_subscription(client: &Client, sub: &str, topic: &str) -> anyhow::Result<()> {
    match client.create_subscription(&Subscription::new(sub, topic).with_ack_deadline_seconds(60)).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(e).context(format!("creating subscription {sub}")),
    }
}

/// Pulls until every published event id was seen once.
async fn verify(client: &Client, sub: &str, expected: u64) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut duplicates = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while (seen.len() as u64) < expected {
        if Instant::now() > deadline {
            bail!("only {} of {expected} events came back within 120 s", seen.len());
        }
        let batch = client.pull_immediately(sub, 1000).await?;
        let acks: Vec<String> = batch.iter().map(|m| m.ack_id.clone()).collect();
        for m in &batch {
            let id = m.attributes.get("event_id").cloned().unwrap_or_default();
            if !seen.insert(id) {
                duplicates += 1;
            }
        }
        client.acknowledge(sub, &acks).await?;
    }
    println!("verified: {} distinct events read back, {duplicates} redelivered copies", seen.len());
    Ok(())
}
