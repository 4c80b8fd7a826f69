//! `tend capacity`: reads the capacity cache and prints a table.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::ecs_capacity::reader::{CapacityReader, ReadError};
use crate::ecs_capacity::{CachedCluster, CapacityCache};
use crate::redis_client::Redis;

/// Exit status when the answer cannot be trusted or read.
const EXIT_UNKNOWN: u8 = 2;

pub async fn capacity(
    config: Config,
    cluster: Option<String>,
    cpu: i64,
    memory: i64,
    max_age: Option<Duration>,
) -> ExitCode {
    let redis = match Redis::new(&config.redis) {
        Ok(redis) => redis,
        Err(error) => {
            eprintln!("tend: invalid Redis settings: {error}");
            return ExitCode::from(EXIT_UNKNOWN);
        }
    };
    let cache = CapacityCache::new(redis, config.redis.seed_keys);
    let reader = CapacityReader::new(cache, max_age.unwrap_or(config.ecs_capacity.max_age));
    let clusters = match &cluster {
        Some(name) => reader.cluster(name).await.map(|c| vec![c]),
        None => reader.all().await,
    };
    let clusters = match clusters {
        Ok(clusters) => clusters,
        Err(error) => {
            eprintln!("tend: {}", describe(&error));
            return ExitCode::from(EXIT_UNKNOWN);
        }
    };
    if clusters.is_empty() {
        eprintln!(
            "tend: the capacity cache is empty; is the ecs-capacity loop running against this Redis?"
        );
        return ExitCode::from(EXIT_UNKNOWN);
    }
    let asked = cpu > 0 || memory > 0;
    print!("{}", table(&clusters, cpu, memory, asked));
    if !asked {
        return ExitCode::SUCCESS;
    }
    let fits = clusters
        .iter()
        .find_map(|c| c.best_fit(cpu, memory).map(|i| (c, i)));
    match fits {
        Some((cluster, instance)) => {
            let target = instance.ec2_instance_id.as_deref().unwrap_or(&instance.arn);
            println!(
                "fits: {cpu} CPU units and {memory} MiB fit on {target} in cluster {}",
                cluster.cluster.name
            );
            ExitCode::SUCCESS
        }
        None => {
            println!(
                "does not fit: no single schedulable instance has {cpu} CPU units and {memory} MiB free"
            );
            ExitCode::FAILURE
        }
    }
}

fn describe(error: &ReadError) -> String {
    crate::runtime::error_chain(error)
}

fn table(clusters: &[CachedCluster], cpu: i64, memory: i64, asked: bool) -> String {
    let now = SystemTime::now();
    let mut rows = vec![[
        "CLUSTER".to_owned(),
        "INSTANCES".to_owned(),
        "FREE CPU".to_owned(),
        "FREE MiB".to_owned(),
        "LARGEST CPU".to_owned(),
        "LARGEST MiB".to_owned(),
        "AGE".to_owned(),
        "FITS".to_owned(),
    ]];
    for cached in clusters {
        let s = &cached.summary;
        let fits = if s.fargate_only {
            "fargate-only".to_owned()
        } else if !asked {
            "-".to_owned()
        } else if cached.best_fit(cpu, memory).is_some() {
            "yes".to_owned()
        } else {
            "no".to_owned()
        };
        rows.push([
            cached.cluster.name.clone(),
            format!(
                "{}/{} schedulable",
                s.schedulable_instances, s.instances_total
            ),
            s.free_cpu.to_string(),
            s.free_memory.to_string(),
            s.largest_free_cpu.to_string(),
            s.largest_free_memory.to_string(),
            format!("{}s", cached.age(now).as_secs()),
            fits,
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|col| rows.iter().map(|r| r[col].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (col, cell) in row.iter().enumerate() {
            let _ = write!(out, "{cell:<width$}  ", width = widths[col]);
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}
