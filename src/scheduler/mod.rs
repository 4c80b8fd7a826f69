//! The `scheduler` loop: places task requests from SQS on ECS, highest
//! priority first, only where the capacity cache shows room.
//!
//! # Guarantees
//! - No RunTask call is made for a request the cache says cannot fit: the
//!   instance is chosen from the cache and the room reserved atomically in
//!   Redis first, so replicas sharing a Redis never oversubscribe an instance.
//! - Strict priority (the default): while the oldest waiting request of a
//!   priority does not fit, nothing of that or lower priority starts and
//!   lower queues are not even received from. With `backfill`, requests that
//!   fit may start around one that does not, lower priorities included; a
//!   large request can then wait for as long as smaller ones keep arriving.
//! - A request that waits for room is held by this replica, invisible in
//!   SQS and renewed each round, so it keeps its place and SQS does not
//!   count another receive against the queue's redrive `maxReceiveCount`.
//! - RunTask carries a client token derived from the SQS message id, and a
//!   marker in Redis records launched message ids, so a redelivered message
//!   never starts a second task.
//! - Redis unreachable or the cache stale: the round fails and nothing
//!   launches (fail closed); held messages stay held.
//!
//! # Caveats
//! Receiving is bounded by an estimate: the number of tasks of the smallest
//! size seen on that queue (one per instance before any is seen) that the
//! cached free capacity could take.

mod intake;
mod launch;
mod metrics;
mod placement;
pub mod request;
mod reservations;
mod round;
mod tracker;

pub use intake::{Intake, Queue, REASON_ATTRIBUTE};
pub use launch::{Launch, Launcher, client_token};
pub use metrics::SchedulerMetrics;
pub use placement::{Reserved, Strategy, choose, slots};
pub use request::{InvalidRequest, TaskRequest};
pub use reservations::Reservations;
pub use round::{Scheduler, SchedulerError, SchedulerParts};
pub use tracker::Tracker;

pub const LOOP_NAME: &str = "scheduler";
