//! `tend submit`: validates a task request with the scheduler's own parser
//! and sends it to a priority queue.

use std::process::ExitCode;

use serde_json::{Map, Value};

use crate::cli::SubmitArgs;
use crate::config::Config;
use crate::scheduler::{Intake, Queue, TaskRequest};

/// Builds the message body from the options, or takes `--body` as is.
fn body(args: &SubmitArgs) -> Result<String, String> {
    if let Some(body) = &args.body {
        return Ok(body.clone());
    }
    let mut fields = Map::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            fields.insert(name.to_owned(), value);
        }
    };
    put("cluster", args.cluster.clone().map(Value::from));
    put(
        "task_definition",
        args.task_definition.clone().map(Value::from),
    );
    put("cpu", args.cpu.map(Value::from));
    put("memory", args.memory.map(Value::from));
    put("count", args.count.map(Value::from));
    put("started_by", args.started_by.clone().map(Value::from));
    put("group", args.group.clone().map(Value::from));
    if let Some(text) = &args.overrides {
        let overrides: Value = serde_json::from_str(text)
            .map_err(|error| format!("--overrides is not valid JSON: {error}"))?;
        fields.insert("overrides".to_owned(), overrides);
    }
    Ok(Value::Object(fields).to_string())
}

/// Resolves `--queue` against the configured queues by name, or takes a URL.
fn queue_url(config: &Config, queue: &str) -> Result<String, String> {
    if queue.starts_with("http://") || queue.starts_with("https://") {
        return Ok(queue.to_owned());
    }
    let queues: Vec<Queue> = config
        .scheduler
        .queues
        .iter()
        .map(|url| Queue::from_url(url))
        .collect();
    queues
        .iter()
        .find(|q| q.name == queue)
        .map(|q| q.url.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
            format!("no queue named {queue:?} in scheduler.queues (configured: {names:?}); pass a queue URL instead")
        })
}

pub async fn submit(config: Config, args: SubmitArgs) -> ExitCode {
    let prepared = body(&args).and_then(|body| {
        let request =
            TaskRequest::parse(&body).map_err(|error| format!("invalid request: {error}"))?;
        Ok((request, queue_url(&config, &args.queue)?))
    });
    let (request, url) = match prepared {
        Ok(prepared) => prepared,
        Err(message) => {
            eprintln!("tend: {message}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let sdk = match crate::aws::load(&config.aws).await {
        Ok(sdk) => sdk,
        Err(error) => {
            eprintln!("tend: {error}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let client = aws_sdk_sqs::Client::new(&sdk);
    match Intake::send(&client, &url, request.to_body()).await {
        Ok(message_id) => {
            println!("queued request {message_id} on {url}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tend: {error}");
            ExitCode::FAILURE
        }
    }
}
