//! The close protocol's coordination objects: seals (who may close an hour), the state a
//! writer reads after its part is durable, and the publication of a commit record.
//!
//! * A closer creates `_seal-<gen>` (create-only) in the hour's staging folder before it lists
//!   the hour's parts. The highest generation holds the hour. A seal whose holder's heartbeat
//!   is no longer live (silent past the ack deadline) or that is older than
//!   `close.seal_timeout_secs` is stale: the next generation takes it over.
//! * A writer, after its part is durable, lists the seals and only then reads `_commit`: no
//!   seal and no commit means no closer has listed the hour yet, so the part will be listed.
//! * The commit record `_commit` is created once in the hour folder; its publication (copies,
//!   then `_SUCCESS`) is idempotent, so anyone can finish it.

use std::collections::HashSet;

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::{self, HourKey, MANIFEST, SEAL_PREFIX};
use crate::manifest::Commit;
use crate::store::{Created, Store};

/// The content of a seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Seal {
    /// The process holding it (`<replica>-<incarnation>`).
    pub holder: String,
    /// When it was created, Unix seconds.
    pub at: i64,
}

/// What a writer learns about an hour after its part is durable.
#[derive(Debug)]
pub(crate) enum HourState {
    /// No closer has listed it yet: the part will be in its output.
    Open,
    /// A closer holds it and has not committed yet: wait.
    Sealed,
    /// Committed: its output is final.
    Committed(Box<Commit>),
}

/// Reads the state of `key`: seals first, then the commit record (that order is what makes
/// "no seal, no commit" mean the part will be listed).
pub(crate) async fn hour_state(b: &Store, key: &HourKey) -> Result<HourState> {
    let sealed = !seals(b, key).await?.is_empty();
    Ok(match b.commit(key).await? {
        Some(c) => HourState::Committed(Box::new(c)),
        None if sealed => HourState::Sealed,
        None => HourState::Open,
    })
}

/// The seals of `key`, as (generation, object name), highest last.
async fn seals(b: &Store, key: &HourKey) -> Result<Vec<(u32, String)>> {
    let dir = Path::from(layout::staging_dir(key));
    let mut out: Vec<(u32, String)> = b
        .list(&dir)
        .await?
        .into_iter()
        .filter_map(|n| n.strip_prefix(SEAL_PREFIX).and_then(|g| g.parse().ok()).map(|g| (g, n.clone())))
        .collect();
    out.sort_unstable();
    Ok(out)
}

fn seal_name(generation: u32) -> String {
    format!("{SEAL_PREFIX}{generation:06}")
}

/// The outcome of trying to seal an hour.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sealing {
    /// This process holds the seal of this generation.
    Held(u32),
    /// Another live closer holds it.
    Busy(String),
}

/// When a seal held by another process may be taken over.
#[derive(Debug, Clone)]
pub(crate) struct Staleness {
    /// Processes whose heartbeat is live.
    pub live: HashSet<String>,
    /// A seal of a process that is not live is stale after this many seconds.
    pub silent_secs: i64,
    /// Any seal is stale after this many seconds.
    pub timeout_secs: i64,
}

/// Seals `key` for `me`, taking over a stale seal.
pub(crate) async fn acquire(b: &Store, key: &HourKey, me: &str, stale: &Staleness) -> Result<Sealing> {
    let now = crate::core::now_secs();
    let mine = Bytes::from(serde_json::to_vec(&Seal { holder: me.to_owned(), at: now }).unwrap_or_default());
    let current = seals(b, key).await?;
    let Some((generation, name)) = current.last() else {
        return match b.create(&layout::staging_object(key, &seal_name(0)), mine).await {
            Ok(_) => Ok(Sealing::Held(0)),
            Err(Error::Conflict { .. }) => {
                Ok(Sealing::Busy("a closer that sealed at the same moment".into()))
            }
            Err(e) => Err(e),
        };
    };
    let seal: Seal = b
        .get_json(&layout::staging_object(key, name))
        .await?
        .ok_or_else(|| Error::Manifest { path: name.clone(), reason: "seal vanished".into() })?;
    if seal.holder == me {
        return Ok(Sealing::Held(*generation));
    }
    let age = now - seal.at;
    let is_stale =
        (!stale.live.contains(&seal.holder) && age > stale.silent_secs) || age > stale.timeout_secs;
    if !is_stale {
        return Ok(Sealing::Busy(seal.holder));
    }
    let next = generation + 1;
    match b.create(&layout::staging_object(key, &seal_name(next)), mine).await {
        Ok(_) => {
            tracing::warn!(hour = %layout::hour_dir(key), stale_holder = %seal.holder, age_secs = age, generation = next, "took over a stale seal");
            Ok(Sealing::Held(next))
        }
        Err(Error::Conflict { .. }) => Ok(Sealing::Busy("another closer taking over".into())),
        Err(e) => Err(e),
    }
}

/// Whether `me` still holds generation `generation` of `key`'s seal (fencing: a closer whose
/// seal was taken over stops before it commits).
pub(crate) async fn still_holds(b: &Store, key: &HourKey, generation: u32) -> Result<bool> {
    Ok(seals(b, key).await?.last().is_some_and(|(g, _)| *g == generation))
}

/// Publishes a commit record: its copies, then `_SUCCESS`. Idempotent.
pub(crate) async fn publish(b: &Store, key: &HourKey, commit: &Commit) -> Result<Created> {
    for c in &commit.copies {
        b.copy_create(&Path::from(c.from.as_str()), &Path::from(c.to.as_str())).await?;
    }
    b.create(&layout::hour_object(key, MANIFEST), Bytes::from(commit.manifest_bytes())).await
}
