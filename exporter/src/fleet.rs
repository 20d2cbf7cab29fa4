//! The fleet: every process writes a heartbeat (per type: its watermark, the oldest on-time
//! event it still holds unwritten, whether it is idle, the hours it has open) every
//! `close.heartbeat_secs`, reads everyone's, and from them derives what no single replica
//! can know alone: the fleet watermark (the minimum over live processes), which processes are
//! live (a seal of one that is not can be taken over), the hours with staged work (so any
//! replica closes them, whoever wrote them) and each type's closed-hours cursor.
//!
//! A process is live until its heartbeat is older than the subscription's ack deadline plus
//! two heartbeat intervals: by then the messages it held have come back to the others, whose
//! watermarks hold them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::core::now_secs;
use crate::error::Result;
use crate::layout;
use crate::store::Store;

/// Heartbeats silent for longer than this are deleted by whoever reads them.
const FORGET_SECS: i64 = 24 * 3600;

/// One type's state in a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TypeBeat {
    /// The process's own watermark (it will hold nothing on time before it).
    pub watermark: i64,
    /// The fleet watermark as the process sees it.
    pub fleet: i64,
    /// Oldest event time it holds unwritten (on-time events only).
    pub low: Option<i64>,
    /// No message of the type for `close.idle_secs`.
    pub idle: bool,
    /// Hours it has open (buffered or written, not yet closed).
    pub open_hours: Vec<i64>,
}

/// A heartbeat object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    /// The replica name.
    pub replica: String,
    /// `<replica>-<incarnation>`.
    pub writer: String,
    /// When it was written, Unix seconds.
    pub written_at: i64,
    /// When the process last received a message, Unix seconds.
    pub last_delivery_at: Option<i64>,
    /// Per type.
    pub types: BTreeMap<String, TypeBeat>,
}

/// What the fleet looks like to this process.
#[derive(Debug, Clone, Default)]
pub(crate) struct FleetView {
    /// Per type, the minimum watermark over the other live processes (absent: none knows it).
    pub others: HashMap<String, i64>,
    /// Per type, the highest fleet watermark any heartbeat reported.
    pub learned: HashMap<String, i64>,
    /// Live processes, this one included.
    pub live: HashSet<String>,
    /// Per type, hours with a staging folder.
    pub staging: HashMap<String, BTreeSet<i64>>,
    /// Per type, hours other processes have open.
    pub open: HashMap<String, BTreeSet<i64>>,
    /// Per type, the closed-hours cursor.
    pub cursors: HashMap<String, i64>,
}

/// The cursor object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// Every hour before this one is closed.
    pub next_hour: i64,
}

/// Writes and reads heartbeats, scans staging.
#[derive(Debug, Clone)]
pub(crate) struct Fleet {
    pub store: Store,
    pub me: String,
    pub types: Vec<String>,
    /// A heartbeat older than this is not live.
    pub silent_secs: i64,
    pub interval: Duration,
    pub scan_every: Duration,
}

impl Fleet {
    /// Writes this process's heartbeat.
    pub(crate) async fn beat(&self, mine: &Heartbeat) -> Result<()> {
        let mut hb = mine.clone();
        hb.written_at = now_secs();
        let body = Bytes::from(serde_json::to_vec(&hb).unwrap_or_default());
        self.store.overwrite(&layout::heartbeat(&self.me), body).await
    }

    /// Deletes this process's heartbeat (at a graceful shutdown: nobody waits for it).
    pub(crate) async fn leave(&self) -> Result<()> {
        self.store.delete(&layout::heartbeat(&self.me)).await
    }

    /// Reads every heartbeat and fills `view`'s fleet fields; deletes long-dead heartbeats.
    pub(crate) async fn read(&self, view: &mut FleetView) -> Result<()> {
        let now = now_secs();
        let dir = layout::heartbeats_dir();
        let mut beats = Vec::new();
        for name in self.store.list(&dir).await? {
            let path = object_store::path::Path::from(format!("{dir}/{name}"));
            match self.store.get_json::<Heartbeat>(&path).await {
                Ok(Some(hb)) if now - hb.written_at > FORGET_SECS => {
                    let _ = self.store.delete(&path).await;
                }
                Ok(Some(hb)) => beats.push(hb),
                Ok(None) => {}
                Err(e) => tracing::warn!(%path, error = %e, "unreadable heartbeat; ignored"),
            }
        }
        *view = FleetView {
            staging: std::mem::take(&mut view.staging),
            cursors: std::mem::take(&mut view.cursors),
            ..summarize(&self.me, &beats, now, self.silent_secs)
        };
        Ok(())
    }

    /// Lists the hours with staged work and reads the cursors.
    pub(crate) async fn scan(&self, view: &mut FleetView) -> Result<()> {
        let mut staging = HashMap::new();
        let mut cursors = HashMap::new();
        for t in &self.types {
            // Every object, not folders: a local directory keeps empty folders after a delete.
            let dir = layout::staging_type_dir(t);
            let mut hours = BTreeSet::new();
            for name in self.store.list(&dir).await? {
                let mut it = name.split('/');
                if let (Some(date), Some(hh), Some(_)) = (it.next(), it.next(), it.next())
                    && let Some(h) = layout::parse_hour(date, hh)
                {
                    hours.insert(h);
                }
            }
            staging.insert(t.clone(), hours);
            if let Some(c) = self.store.get_json::<Cursor>(&layout::cursor(t)).await? {
                cursors.insert(t.clone(), c.next_hour);
            }
        }
        view.staging = staging;
        view.cursors = cursors;
        Ok(())
    }

    /// Moves `event_type`'s cursor forward to `next_hour` (never back, as far as it can tell).
    pub(crate) async fn advance_cursor(&self, event_type: &str, next_hour: i64) -> Result<()> {
        let path = layout::cursor(event_type);
        if self.store.get_json::<Cursor>(&path).await?.is_some_and(|c| c.next_hour >= next_hour) {
            return Ok(());
        }
        let body = Bytes::from(serde_json::to_vec(&Cursor { next_hour }).unwrap_or_default());
        self.store.overwrite(&path, body).await
    }
}

/// The fleet fields of a view from the heartbeats read at `now`.
pub(crate) fn summarize(me: &str, beats: &[Heartbeat], now: i64, silent_secs: i64) -> FleetView {
    let mut view = FleetView::default();
    view.live.insert(me.to_owned());
    for hb in beats {
        for (t, tb) in &hb.types {
            let l = view.learned.entry(t.clone()).or_insert(i64::MIN);
            *l = (*l).max(tb.fleet);
        }
        if hb.writer == me || now - hb.written_at > silent_secs {
            continue;
        }
        view.live.insert(hb.writer.clone());
        for (t, tb) in &hb.types {
            let o = view.others.entry(t.clone()).or_insert(i64::MAX);
            *o = (*o).min(tb.watermark);
            view.open.entry(t.clone()).or_default().extend(tb.open_hours.iter().copied());
        }
    }
    view
}

/// Runs the heartbeat loop until `stop`: write ours, read everyone's, scan staging now and
/// then, and hand the view to the core.
pub(crate) async fn run(
    fleet: Fleet,
    mine: watch::Receiver<Heartbeat>,
    view_tx: watch::Sender<FleetView>,
    metrics: std::sync::Arc<crate::Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut view = view_tx.borrow().clone();
    let mut last_scan = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(fleet.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let hb = mine.borrow().clone();
        if let Err(e) = fleet.beat(&hb).await {
            metrics.heartbeat_failures.inc();
            tracing::warn!(error = %e, "cannot write the heartbeat");
        }
        match fleet.read(&mut view).await {
            Ok(()) => {
                metrics.fleet_processes.set(view.live.len() as i64);
            }
            Err(e) => {
                metrics.heartbeat_failures.inc();
                tracing::warn!(error = %e, "cannot read the fleet's heartbeats; the watermark waits");
                continue;
            }
        }
        if last_scan.elapsed() >= fleet.scan_every {
            match fleet.scan(&mut view).await {
                Ok(()) => last_scan = tokio::time::Instant::now(),
                Err(e) => tracing::warn!(error = %e, "cannot list the staging folders"),
            }
        }
        let _ = view_tx.send(view.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(writer: &str, at: i64, wm: i64, fleet: i64) -> Heartbeat {
        Heartbeat {
            replica: "r".into(),
            writer: writer.into(),
            written_at: at,
            last_delivery_at: None,
            types: [(
                "play".to_owned(),
                TypeBeat { watermark: wm, fleet, open_hours: vec![7200], ..TypeBeat::default() },
            )]
            .into(),
        }
    }

    #[test]
    fn the_fleet_minimum_counts_live_processes_only_and_learns_the_highest_fleet_watermark() {
        let now = 10_000;
        let beats = [beat("a", now - 5, 500, 400), beat("b", now - 100, 100, 900), beat("me", now, 50, 50)];
        let v = summarize("me", &beats, now, 60);
        assert_eq!(v.others.get("play"), Some(&500), "b is silent past 60 s, me is not an other");
        assert_eq!(v.learned.get("play"), Some(&900), "a silent process's view still teaches");
        assert!(v.live.contains("a") && v.live.contains("me") && !v.live.contains("b"));
        assert_eq!(v.open.get("play").map(|h| h.len()), Some(1));
    }
}
