//! Helpers that start and talk to the peers the integration tests need.

pub mod ecs_fake;
pub mod env;
pub mod fault_proxy;
pub mod http_fault_proxy;
pub mod instagram;
pub mod instagram_fake;
pub mod scheduler;
pub mod tend;

use std::sync::atomic::{AtomicU32, Ordering};

/// Returns `base` made unique to this test process and call, so tests can
/// share one Redis and one moto server without seeing each other's keys.
pub fn unique(base: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{base}-{}-{n}", std::process::id())
}
