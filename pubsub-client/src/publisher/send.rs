//! Sending one batch: compression, the request, retries, the response.

use std::sync::Arc;
use std::time::Instant;

use reqwest::Method;
use tracing::Instrument;

use super::Inner;
use super::batch::Batch;
use super::outcome::MessageIds;
use super::stats::add;
use crate::transport::Body;
use crate::wire::gzip;

/// Bodies at least this large are compressed on the blocking pool, not on a runtime worker.
const COMPRESS_OFFLOAD_BYTES: usize = 256 * 1024;

pub(super) async fn send_batch(inner: Arc<Inner>, mut batch: Batch) {
    let count = batch.count();
    let permit = inner.in_flight.acquire().await;
    let raw = std::mem::take(&mut batch.body).finish();
    let body_len = raw.len();
    let cfg = &inner.config;
    let body = match cfg.gzip_threshold {
        Some(threshold) if body_len >= threshold => {
            let level = cfg.gzip_level;
            let packed = if body_len >= COMPRESS_OFFLOAD_BYTES {
                let raw = raw.clone();
                tokio::task::spawn_blocking(move || gzip(&raw, level)).await.ok()
            } else {
                Some(gzip(&raw, level))
            };
            match packed {
                Some(p) => Body { bytes: p.into(), gzipped: true },
                None => Body::json(raw),
            }
        }
        _ => Body::json(raw),
    };
    let wire_len = body.bytes.len();
    let span = tracing::debug_span!("publish", topic = %inner.topic, messages = count, bytes = body_len, wire_bytes = wire_len);
    let transport = inner.client.transport();
    let path = inner.publish_path.as_str();
    let counters = &inner.counters;
    let result = cfg
        .retry
        .run(
            |_attempt| {
                let body = body.clone();
                async move {
                    add(&counters.requests, 1u64);
                    let start = Instant::now();
                    let r = transport.call(Method::POST, path, Some(body)).await;
                    add(&counters.request_nanos, start.elapsed().as_nanos());
                    r
                }
            },
            |err, attempt| {
                add(&counters.retries, 1u64);
                tracing::debug!(attempt, error = %err, "retrying publish");
            },
        )
        .instrument(span)
        .await;
    drop(permit);
    let result = result.and_then(|bytes| MessageIds::parse(bytes, count)).map(Arc::new);
    match &result {
        Ok(_) => {
            add(&counters.messages_published, count);
            add(&counters.batches_published, 1u64);
            add(&counters.body_bytes, body_len);
            add(&counters.wire_bytes, wire_len);
        }
        Err(e) => {
            add(&counters.messages_failed, count);
            add(&counters.batches_failed, 1u64);
            tracing::warn!(topic = %inner.topic, messages = count, error = %e, "publish failed");
        }
    }
    inner.finish_batch(batch, result);
}
