//! Dev-only test harness for the Pub/Sub client.
//!
//! * [`Emulator`]: Google's official Pub/Sub emulator on a free port, either shared by every
//!   test of a test binary ([`Emulator::shared`]) or dedicated to one test ([`Emulator::start`]).
//!   The JVM never outlives the test process, even when that process is killed.
//! * [`FaultProxy`]: an HTTP/1.1 proxy in front of the emulator that injects faults (error
//!   statuses, delays, dropped connections) into matching requests and records them.
//! * [`unique_name`]: topic and subscription ids that do not collide between tests or
//!   between concurrently running test processes.

mod emulator;
mod names;
mod proxy;

pub use emulator::{DEFAULT_EMULATOR_BIN, EMULATOR_BIN_ENV, Emulator};
pub use names::unique_name;
pub use proxy::{Fault, FaultProxy, RecordedRequest};
