//! tend: a reconciling controller run as a sidecar. Each loop compares the
//! desired state with the observed state and acts idempotently; see the
//! README for the loops, their contracts and the Redis keys.

pub mod aws;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod ecs_capacity;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod instagram;
pub mod metrics;
pub mod redis_client;
pub mod runtime;
pub mod scheduler;
