//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load tests for capacity planning: the producer test and the consumer stability test of
/// pubsub-client, and the whole pipeline at a rate.
#[derive(Parser, Debug)]
#[command(name = "loadtest", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Publish at a rate (or as fast as possible) for a duration.
    Publish(PublishArgs),
    /// Publish and consume together; measure end-to-end latency, losses and duplicates.
    Consume(ConsumeArgs),
    /// Just enough of the publish API to measure a publisher (used by --target null).
    NullSink {
        /// Port on 127.0.0.1 (0 = any; the address is printed on stdout).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// The whole pipeline (tailer -> event-service -> Pub/Sub -> exporter) at a rate, checked
    /// end to end (runs `local-pipeline` from the same directory as this binary).
    Pipeline(PipelineArgs),
}

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The Pub/Sub emulator (`PUBSUB_EMULATOR_HOST`, or one started from the machine image).
    Emulator,
    /// `loadtest null-sink` in a child process.
    Null,
    /// Real Pub/Sub with application default credentials.
    Pubsub,
    /// Another endpoint: `http://host:port` (emulator-like, no auth) or `https://...` (with auth).
    Url(String),
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "emulator" => Ok(Target::Emulator),
            "null" => Ok(Target::Null),
            "pubsub" => Ok(Target::Pubsub),
            u if u.starts_with("http://") || u.starts_with("https://") => Ok(Target::Url(u.to_owned())),
            other => {
                Err(format!("unknown target {other:?}: use emulator, null, pubsub or an http(s):// URL"))
            }
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Emulator => f.write_str("emulator"),
            Target::Null => f.write_str("null"),
            Target::Pubsub => f.write_str("pubsub"),
            Target::Url(u) => f.write_str(u),
        }
    }
}

/// An offered rate: messages per second, or `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(pub Option<u32>);

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Rate(None));
        }
        match s.replace('_', "").parse::<u32>() {
            Ok(n) if n > 0 => Ok(Rate(Some(n))),
            _ => Err(format!("rate {s:?} is not a positive number of messages per second or `max`")),
        }
    }
}

/// Topics and their weights, e.g. `play=7,search=3`.
#[derive(Debug, Clone, PartialEq)]
pub struct Topics(pub Vec<(String, u32)>);

impl std::str::FromStr for Topics {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (name, w) = part.split_once('=').unwrap_or((part, "1"));
            let w: u32 =
                w.parse().map_err(|_| format!("weight {w:?} of topic {name:?} is not a whole number"))?;
            if name.is_empty() || w == 0 {
                return Err(format!("{part:?}: a topic needs a name and a weight above 0"));
            }
            out.push((name.to_owned(), w));
        }
        if out.is_empty() {
            return Err("no topics given".to_owned());
        }
        Ok(Topics(out))
    }
}

/// Which client publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientKind {
    /// pubsub-client (this project, REST).
    Ours,
    /// Google's official Rust client, `google-cloud-pubsub` (gRPC; the `official` feature, on by
    /// default). Not with `--target null`, which speaks only REST.
    Official,
    /// A pre-encoded REST blaster: the same body POSTed over and over, the ceiling of any REST
    /// client against the target (plain-http targets only).
    Raw,
}

impl ClientKind {
    /// The name in summaries.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Ours => "ours",
            ClientKind::Official => "official",
            ClientKind::Raw => "raw",
        }
    }
}

/// Settings of the publishers.
#[derive(Args, Debug, Clone)]
pub struct PublishOptions {
    /// Messages per second offered (token bucket), or `max`.
    #[arg(long, default_value = "max")]
    pub rate: Rate,
    /// How long to publish (humantime: 30s, 10m, 1h).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Bytes of payload per message.
    #[arg(long, default_value_t = 150)]
    pub payload_bytes: usize,
    /// Topics and weights.
    #[arg(long, default_value = "play=7,search=3")]
    pub topics: Topics,
    /// The client: ours, official (Google's Rust client, gRPC) or raw (a pre-encoded REST
    /// blaster). `consume` runs ours only.
    #[arg(long, value_enum, default_value_t = ClientKind::Ours)]
    pub client: ClientKind,
    /// Where to publish: emulator, null, pubsub or a URL.
    #[arg(long, default_value = "emulator")]
    pub target: Target,
    /// Google Cloud project.
    #[arg(long, default_value = "eventpipe-loadtest")]
    pub project: String,
    /// Gzip request bodies (above 1 KiB).
    #[arg(long)]
    pub gzip: bool,
    /// Messages per publish request (at most 1000).
    #[arg(long, default_value_t = 1000)]
    pub batch_messages: usize,
    /// How long a batch waits to fill (humantime).
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    pub batch_delay: Duration,
    /// Publish requests in flight per topic.
    #[arg(long, default_value_t = 16)]
    pub max_in_flight: usize,
    /// Flow control: messages accepted but not yet confirmed, per topic.
    #[arg(long, default_value_t = 100_000)]
    pub max_outstanding_messages: usize,
    /// Flow control: bytes accepted but not yet confirmed, per topic.
    #[arg(long, default_value_t = 128 * 1024 * 1024)]
    pub max_outstanding_bytes: usize,
    /// Producer tasks.
    #[arg(long, default_value_t = 2)]
    pub producers: usize,
    /// Print one JSON object as the last line of output.
    #[arg(long)]
    pub json: bool,
    /// Write a self-contained HTML report with charts over time.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// No live progress on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// At the end, delete the topics and subscriptions this run created (not with `--target
    /// pubsub`, whose topics are yours). The emulator keeps every message it is given, so
    /// back-to-back runs against one emulator need this to stay within its memory.
    #[arg(long)]
    pub cleanup: bool,
}

/// `loadtest publish`.
#[derive(Args, Debug, Clone)]
pub struct PublishArgs {
    /// Publisher settings.
    #[command(flatten)]
    pub publish: PublishOptions,
}

/// The rate over time of `consume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// `--rate` all the time.
    Constant,
    /// A day compressed into the run: 20% of `--rate` at the start and end, `--rate` midway
    /// (rate = peak × (0.2 + 0.8 × sin²(π·t/duration))).
    Diurnal,
}

/// `loadtest consume`.
#[derive(Args, Debug, Clone)]
pub struct ConsumeArgs {
    /// Publisher settings (`--rate` is the peak of the profile; `max` is not allowed).
    #[command(flatten)]
    pub publish: PublishOptions,
    /// Rate profile.
    #[arg(long, value_enum, default_value_t = Profile::Constant)]
    pub profile: Profile,
    /// After publishing stops, how long to wait for the last messages.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub drain: Duration,
}

/// `loadtest pipeline`.
#[derive(Args, Debug, Clone)]
pub struct PipelineArgs {
    /// Log lines per second written.
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,
    /// How long to write (humantime).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Print one JSON object as the last line of output.
    #[arg(long)]
    pub json: bool,
    /// Work directory.
    #[arg(long, default_value = "target/loadtest-pipeline")]
    pub out: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_topics_rates_and_targets() {
        assert_eq!(
            "play=7,search=3".parse::<Topics>(),
            Ok(Topics(vec![("play".into(), 7), ("search".into(), 3)]))
        );
        assert!("play=x".parse::<Topics>().expect_err("bad weight").contains("\"x\""));
        assert!("=3".parse::<Topics>().is_err());
        assert_eq!("max".parse::<Rate>(), Ok(Rate(None)));
        assert_eq!("2_000_000".parse::<Rate>(), Ok(Rate(Some(2_000_000))));
        assert!("0".parse::<Rate>().is_err());
        assert_eq!("http://h:1".parse::<Target>(), Ok(Target::Url("http://h:1".into())));
        assert!("nowhere".parse::<Target>().expect_err("bad target").contains("unknown target"));
    }
}
