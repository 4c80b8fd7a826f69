//! Chooses an instance for a request from the cached capacity minus the
//! capacity other launches have reserved.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::ecs_capacity::Instance;

/// How to choose among the instances that fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Least remaining memory that fits, then least CPU: fills instances up
    /// and keeps large holes free for large tasks.
    Binpack,
    /// Most remaining memory, then most CPU: spreads load across instances.
    Spread,
}

/// CPU units and MiB held by reservations, per instance ARN. Looked up once
/// per candidate instance on every decision, so it uses a fast
/// non-cryptographic hash: the keys are ARNs from ECS, not attacker input.
pub type Reserved = HashMap<String, (i64, i64), BuildHasherDefault<ArnHasher>>;

/// Multiply-rotate hash over 8-byte words (the scheme of rustc's FxHasher).
#[derive(Default, Clone, Copy)]
pub struct ArnHasher(u64);

impl Hasher for ArnHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("chunks_exact yields 8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(SEED);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Capacity one instance has left once reservations are subtracted.
fn available(instance: &Instance, reserved: &Reserved) -> (i64, i64) {
    let (cpu, memory) = reserved.get(&instance.arn).copied().unwrap_or((0, 0));
    (
        instance.remaining_cpu - cpu,
        instance.remaining_memory - memory,
    )
}

/// Returns the instance a task group needing `cpu` units and `memory` MiB
/// in total should go to, or `None` when no single schedulable instance has
/// that much left. Ties go to the lower ARN, so replicas agree.
pub fn choose<'a>(
    instances: &'a [Instance],
    reserved: &Reserved,
    cpu: i64,
    memory: i64,
    strategy: Strategy,
) -> Option<&'a Instance> {
    let mut best: Option<(&Instance, (i64, i64))> = None;
    for instance in instances {
        // Reservations only shrink the room, so an instance that cannot fit
        // the task on its own is skipped before the (hashing) lookup.
        if !instance.fits(cpu, memory) {
            continue;
        }
        let (free_cpu, free_memory) = if reserved.is_empty() {
            (instance.remaining_cpu, instance.remaining_memory)
        } else {
            available(instance, reserved)
        };
        if free_cpu < cpu || free_memory < memory {
            continue;
        }
        let better = match (best, strategy) {
            (None, _) => true,
            (Some((_, (best_cpu, best_memory))), Strategy::Binpack) => {
                (free_memory, free_cpu) < (best_memory, best_cpu)
            }
            (Some((_, (best_cpu, best_memory))), Strategy::Spread) => {
                (free_memory, free_cpu) > (best_memory, best_cpu)
            }
        };
        if better {
            best = Some((instance, (free_cpu, free_memory)));
        }
    }
    best.map(|(instance, _)| instance)
}

/// Estimates how many tasks of at least `cpu` units and `memory` MiB each
/// the instances can still take, so intake receives no more than it can
/// place. Instances without room for one such task count zero.
pub fn slots(instances: &[Instance], reserved: &Reserved, cpu: i64, memory: i64) -> i64 {
    let (cpu, memory) = (cpu.max(1), memory.max(1));
    instances
        .iter()
        .filter(|i| i.schedulable())
        .map(|instance| {
            let (free_cpu, free_memory) = available(instance, reserved);
            (free_cpu / cpu).min(free_memory / memory).max(0)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(arn: &str, cpu: i64, memory: i64) -> Instance {
        Instance {
            arn: arn.into(),
            ec2_instance_id: Some(format!("i-{arn}")),
            status: "ACTIVE".into(),
            agent_connected: true,
            active_tasks: 0,
            registered_cpu: 4096,
            registered_memory: 8192,
            remaining_cpu: cpu,
            remaining_memory: memory,
            version: 1,
        }
    }

    #[test]
    fn binpack_picks_tightest_fit() {
        let instances = [
            instance("a", 4096, 8192),
            instance("b", 1024, 1024),
            instance("c", 2048, 600),
        ];
        let chosen = choose(
            &instances,
            &Reserved::default(),
            512,
            512,
            Strategy::Binpack,
        )
        .unwrap();
        assert_eq!(chosen.arn, "c");
    }

    #[test]
    fn spread_picks_most_room() {
        let instances = [instance("a", 4096, 8192), instance("b", 1024, 1024)];
        let chosen = choose(&instances, &Reserved::default(), 512, 512, Strategy::Spread).unwrap();
        assert_eq!(chosen.arn, "a");
    }

    #[test]
    fn reservations_reduce_room() {
        let instances = [instance("a", 1024, 1024)];
        let reserved: Reserved = [("a".to_owned(), (512, 768))].into_iter().collect();
        assert!(choose(&instances, &reserved, 512, 512, Strategy::Binpack).is_none());
        assert!(choose(&instances, &reserved, 512, 256, Strategy::Binpack).is_some());
        assert_eq!(slots(&instances, &reserved, 256, 128), 2);
    }

    #[test]
    fn unschedulable_instances_skipped() {
        let mut draining = instance("a", 4096, 8192);
        draining.status = "DRAINING".into();
        let mut disconnected = instance("b", 4096, 8192);
        disconnected.agent_connected = false;
        let instances = [draining, disconnected];
        assert!(choose(&instances, &Reserved::default(), 1, 1, Strategy::Binpack).is_none());
        assert_eq!(slots(&instances, &Reserved::default(), 1, 1), 0);
    }
}
