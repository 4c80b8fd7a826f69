//! Helpers that start and talk to the peers the integration tests need.

pub mod ecs_fake;
