//! Integration tests against real peers: Redis on 127.0.0.1, the moto AWS
//! server and the project's ECS fake. One binary, so the suite links once.

mod ecs_fake;
mod support;
