//! Replays one hour of a topic through a fresh subscription, with seek and a snapshot.
//!
//! ```sh
//! # against the emulator (or without PUBSUB_EMULATOR_HOST: application default credentials)
//! PUBSUB_EMULATOR_HOST=127.0.0.1:8085 PUBSUB_PROJECT_ID=my-project \
//!   cargo run -p pubsub-client --example replay_hour -- events-play 2026-12-03T14:00:00Z
//! ```
//!
//! 1. Creates the subscription `<topic>-replay-<YYYYMMDDHH>` (expiring after a day without use,
//!    in case it is never deleted).
//! 2. Seeks it to the hour's start minus a margin (Pub/Sub seeks by publish time; an event is
//!    published a little after its `event_time`). A new subscription can seek back only as far
//!    as the topic's message retention reaches.
//! 3. Takes a snapshot of that starting point: a replay that fails half-way is restarted with
//!    `seek_to_snapshot` instead of working out the time again.
//! 4. Pulls and acknowledges until the subscription is idle, counting the messages whose
//!    `event_time` attribute lies in the hour (a real replay writes them somewhere instead).
//! 5. Deletes the snapshot and the subscription.

use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use pubsub_client::admin::{format_rfc3339, parse_rfc3339};
use pubsub_client::{Client, CreateSnapshot, ExpirationPolicy, Subscription};

/// How far before the hour the seek starts, and after it the replay keeps reading.
const MARGIN: Duration = Duration::from_secs(10 * 60);
/// The replay ends after this long without a message.
const IDLE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(topic), Some(start)) = (args.next(), args.next()) else {
        bail!("usage: replay_hour <topic> <hour start, RFC 3339, e.g. 2026-12-03T14:00:00Z>");
    };
    let start = parse_rfc3339(&start)?;
    let end = start + Duration::from_secs(3600);
    let seek_to = start - MARGIN;

    // The project comes from PUBSUB_PROJECT_ID / GOOGLE_CLOUD_PROJECT or the credentials.
    let client = Client::builder().build().await?;
    let retention = client.get_topic(&topic).await?.message_retention_duration;
    let needed = SystemTime::now().duration_since(seek_to).unwrap_or_default();
    if retention.is_none_or(|r| r < needed) {
        let kept = retention.map_or("no time".to_owned(), |r| format!("{} s", r.as_secs()));
        bail!(
            "topic {topic} keeps messages for {kept}, but the replay needs {} s: a new subscription \
             cannot seek back that far (seek a subscription with retain_acked_messages instead)",
            needed.as_secs()
        );
    }

    let stamp: String = format_rfc3339(start).chars().filter(char::is_ascii_digit).take(10).collect();
    let sub = format!("{topic}-replay-{stamp}");
    let replay = Subscription::new(&sub, &topic)
        .with_ack_deadline_seconds(60)
        .with_expiration_policy(ExpirationPolicy::after(Duration::from_secs(86_400)))
        .with_label("purpose", "replay");
    client.create_subscription(&replay).await.context("creating the replay subscription")?;
    client.seek_to_time(&sub, seek_to).await?;
    let snapshot = format!("{sub}-start");
    client.create_snapshot(&CreateSnapshot::new(&snapshot, &sub).with_label("purpose", "replay")).await?;
    println!("replaying {topic} from {} through {sub}", format_rfc3339(seek_to));

    let result = replay_until_idle(&client, &sub, start, end).await;
    client.delete_snapshot(&snapshot).await?;
    client.delete_subscription(&sub).await?;
    let (in_hour, outside) = result?;
    println!("{in_hour} messages of the hour, {outside} outside it");
    Ok(())
}

/// Pulls and acknowledges until nothing arrived for [`IDLE`]; counts messages whose
/// `event_time` is in `[start, end)` and the others.
async fn replay_until_idle(
    client: &Client,
    sub: &str,
    start: SystemTime,
    end: SystemTime,
) -> anyhow::Result<(u64, u64)> {
    let (mut in_hour, mut outside) = (0, 0);
    let mut idle_since = std::time::Instant::now();
    while idle_since.elapsed() < IDLE {
        let batch = client.pull_immediately(sub, 1000).await?;
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        idle_since = std::time::Instant::now();
        let mut ack_ids = Vec::with_capacity(batch.len());
        for m in batch {
            let event_time = m.attributes.get("event_time").and_then(|t| parse_rfc3339(t).ok());
            match event_time {
                Some(t) if t >= start && t < end => in_hour += 1,
                _ => outside += 1,
            }
            ack_ids.push(m.ack_id);
        }
        client.acknowledge(sub, &ack_ids).await?;
    }
    Ok((in_hour, outside))
}
