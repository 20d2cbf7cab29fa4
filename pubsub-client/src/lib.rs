//! A hand-rolled, high-throughput async client for the Google Cloud Pub/Sub REST API (v1).
//!
//! Built for event pipelines that publish millions of small messages per second: each message
//! is encoded to JSON exactly once, straight into the body of the request that carries it;
//! batches are cut exactly at the API's count and byte limits; memory is bounded by flow
//! control, never by load; and retries follow an explicit [`RetryPolicy`].
//!
//! * [`Client`] — built with [`Client::builder`]: project, endpoint, [`Credentials`]. Honours
//!   `PUBSUB_EMULATOR_HOST` like Google's clients (plain HTTP, no auth).
//! * [`Publisher`] — per-topic batching, flow control (block or fail fast), a cap on requests
//!   in flight, optional gzip, retries with backoff and jitter, ordering keys, `flush` and
//!   graceful `shutdown`. Configured with [`PublisherConfig`].
//! * [`Subscriber`] — pulls in flight, flow control on outstanding messages and bytes, leases
//!   extended in the background with a deadline that follows observed processing times, batched
//!   acks and nacks, graceful shutdown. Configured with [`SubscriberConfig`].
//! * Admin calls on [`Client`]: create / get / update / delete / list [`Topic`]s and
//!   [`Subscription`]s; [`Snapshot`]s and [`seek`](Client::seek) to a time or a snapshot, to
//!   replay messages (see [`admin`]).
//! * Low-level [`Client::pull`], [`Client::acknowledge`] and [`Client::modify_ack_deadline`].
//! * [`wire`] — the publish request encoding, public for load generators and benchmarks.
//!
//! # Quickstart
//!
//! ```no_run
//! use pubsub_client::{Client, Message, PublisherConfig, Topic};
//! use std::time::Duration;
//!
//! # async fn run() -> pubsub_client::Result<()> {
//! // With PUBSUB_EMULATOR_HOST=127.0.0.1:8085 this talks to the emulator.
//! let client = Client::builder().with_project("my-project").build().await?;
//! client.create_topic(&Topic::new("events-play")).await.or_else(|e| {
//!     if e.is_already_exists() { Ok(Topic::new("events-play")) } else { Err(e) }
//! })?;
//!
//! let publisher = client.publisher_with_config(
//!     "events-play",
//!     PublisherConfig::default().with_delay(Duration::from_millis(5)),
//! )?;
//! let mut handles = Vec::new();
//! for i in 0..10 {
//!     let msg = Message::new(format!("play {i}")).with_attribute("event_type", "play");
//!     handles.push(publisher.publish(&msg).await?);
//! }
//! for h in handles {
//!     println!("published as {}", h.await?);
//! }
//! publisher.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Receiving:
//!
//! ```no_run
//! use pubsub_client::{Client, SubscriberConfig};
//! use std::time::Duration;
//!
//! # async fn run() -> pubsub_client::Result<()> {
//! let client = Client::builder().with_project("my-project").build().await?;
//! let config = SubscriberConfig::default().with_max_outstanding_messages(5000);
//! let mut subscriber = client.subscriber_with_config("events-play-export", config)?;
//! let shutdown = subscriber.handle(); // e.g. for a signal handler
//! while let Some(delivery) = subscriber.next().await {
//!     let delivery = delivery?;
//!     // ... write delivery.data() somewhere durable, then:
//!     delivery.ack(); // or delivery.nack() to have it redelivered
//! #   break;
//! }
//! shutdown.shutdown(Duration::from_secs(30)).await;
//! # Ok(()) }
//! ```
//!
//! # Errors and retries
//!
//! Every fallible call returns [`Error`]. [`Error::is_retryable`] tells transient failures
//! (transport errors, HTTP 409 `ABORTED`, 429, 499, 500, 502, 503, 504) from permanent ones;
//! the client retries only the former, per [`RetryPolicy`], and reports permanent ones at once
//! with the server's own message.

pub mod admin;
mod auth;
mod client;
mod completion;
mod error;
pub mod limits;
mod message;
mod names;
mod publisher;
mod pull;
mod retry;
mod subscriber;
mod transport;
pub mod wire;

pub use admin::{
    CreateSnapshot, DeadLetterPolicy, DeliveryRetryPolicy, ExpirationPolicy, SeekTarget, Snapshot,
    SnapshotPage, Subscription, SubscriptionUpdate, Topic, TopicUpdate,
};
pub use auth::{Credentials, PUBSUB_SCOPE};
pub use client::{Client, ClientBuilder, DEFAULT_ENDPOINT, EMULATOR_HOST_ENV, PROJECT_ENV};
pub use error::{Error, Result};
pub use message::Message;
pub use names::{SnapshotName, SubscriptionName, TopicName};
pub use publisher::{LimitExceededBehavior, PublishHandle, Publisher, PublisherConfig, PublisherStats};
pub use pull::ReceivedMessage;
pub use retry::RetryPolicy;
pub use subscriber::{AckHandle, Delivery, Subscriber, SubscriberConfig, SubscriberHandle, SubscriberStats};
