//! Secrets stay secret, and the HTTP port serves only its endpoints.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::ecs_fake::FakeEcs;
use crate::support::env::{PrivateRedis, moto_endpoint};
use crate::support::instagram::{bucket, env_for, ghost_env};
use crate::support::instagram_fake::InstagramFake;
use crate::support::scheduler::Queues;
use crate::support::tend::TendEnv;
use crate::support::unique;

const INSTAGRAM_TOKEN: &str = "IGAAtopsecretTOKEN4417";
const REDIS_PASSWORD: &str = "R3disTopSecret9931";

#[tokio::test]
async fn secrets_appear_nowhere() {
    let redis = PrivateRedis::start(&["--requirepass", REDIS_PASSWORD]);
    let redis_url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}", redis.port);
    let ecs = FakeEcs::start().await;
    let cluster = unique("secret");
    ecs.seed(&json!({"clusters": [{"name": cluster, "instance_groups": [{"cpu": 1024, "memory": 1024}]}]}))
        .await;
    let instagram = InstagramFake::start().await;
    instagram.set_token(INSTAGRAM_TOKEN, None, None).await;
    instagram
        .set_media(
            &json!([{"id": unique("sec").replace('-', "_"), "media_type": "IMAGE", "caption": "x",
                            "timestamp": "2024-06-01T00:00:00+0000"}]),
        )
        .await;
    let (_, ghost_key) = ghost_env();
    let ghost_secret = ghost_key.split_once(':').unwrap().1.to_owned();
    let queues = Queues::create(1, None).await;
    let archive = bucket().await;

    let mut env = TendEnv::new(ecs.endpoint(), &redis_url, &unique("tendsecret"))
        .set("AWS_ENDPOINT_URL_SQS", &moto_endpoint())
        .set("TEND_SCHEDULER_ENABLED", "true")
        .set("TEND_SCHEDULER_QUEUES", &queues.urls.join(","))
        .set("TEND_SCHEDULER_DEAD_LETTER_QUEUE", &queues.dead_letter)
        .set("TEND_LOG_LEVEL", "debug");
    for (key, value) in env_for(
        &instagram,
        &archive,
        &format!("#{}", unique("tend-sec")),
        "unused",
    ) {
        if key.starts_with("TEND_INSTAGRAM")
            || key.starts_with("AWS_")
            || key == "TEND_AWS_S3_FORCE_PATH_STYLE"
        {
            env = env.set(&key, &value);
        }
    }
    let env = env
        .set("TEND_INSTAGRAM_ACCESS_TOKEN", INSTAGRAM_TOKEN)
        .set("TEND_INSTAGRAM_INTERVAL", "1s");
    let tend = env.spawn_run();
    tend.wait_ready(Duration::from_secs(60)).await;

    // An error path too: the token stops working.
    instagram.set_token("IGAAsomeothertoken", None, None).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, status) = tend.get("/status").await;
        if status.contains("code 190") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed instagram pass:\n{status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut outputs = Vec::new();
    for path in ["/metrics", "/status", "/readyz", "/healthz"] {
        outputs.push((path.to_owned(), tend.get(path).await.1));
    }
    let check = env.output(&["check-config"]);
    outputs.push((
        "check-config".to_owned(),
        String::from_utf8_lossy(&check.stdout).into_owned(),
    ));
    outputs.push(("log".to_owned(), tend.log()));
    for (name, text) in &outputs {
        for secret in [INSTAGRAM_TOKEN, REDIS_PASSWORD, ghost_secret.as_str()] {
            assert!(!text.contains(secret), "a secret appears in {name}");
        }
    }
    assert!(outputs[4].1.contains("***"), "check-config masks secrets");
}

/// Sends raw bytes to the port and returns what it answers.
fn raw_request(port: u16, request: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn http_port_serves_only_its_endpoints() {
    let ecs = FakeEcs::start().await;
    let env = TendEnv::new(
        ecs.endpoint(),
        crate::support::env::REDIS_URL,
        &unique("tendhttp"),
    );
    let tend = env.spawn_run();
    for path in [
        "/",
        "/admin",
        "/metrics/extra",
        "/debug/pprof",
        "/status.json",
    ] {
        let (status, _) = tend.get(path).await;
        assert_eq!(status, 404, "{path}");
    }
    let oversized = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Fill: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = raw_request(tend.port, oversized.as_bytes());
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    let (status, _) = tend.get("/healthz").await;
    assert_eq!(status, 200, "still serving after the oversized request");
}
