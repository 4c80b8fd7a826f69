//! Integration tests against real peers: Redis on 127.0.0.1, the moto AWS
//! server and the project's ECS fake. One binary, so the suite links once.

mod cli;
mod conformance;
mod crash;
mod ecs_capacity;
mod ecs_events;
mod ecs_fake;
mod ecs_fake_events;
mod ecs_fake_tasks;
mod faults;
mod instagram;
mod instagram_fake;
mod lease;
mod scheduler_flow;
mod scheduler_intake;
mod security;
mod support;
