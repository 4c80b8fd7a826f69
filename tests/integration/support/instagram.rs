//! An instagram loop wired to the Instagram fake, moto's S3, real Ghost and
//! Redis, with a bucket and an internal tag of its own per test.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{ObjectOwnership, OwnershipControls, OwnershipControlsRule};
use tend::config::Config;
use tend::instagram::{Ghost, InstagramReconciler, Post};
use tend::redis_client::Redis;
use tend::runtime::{CancellationToken, Outcome, Reconciler};

use super::env::{REDIS_URL, moto_endpoint};
use super::instagram_fake::InstagramFake;
use super::unique;

/// Ghost started by `testbed/test.sh`: (URL, Admin API key).
pub fn ghost_env() -> (String, String) {
    let url = std::env::var("GHOST_URL");
    let key = std::env::var("GHOST_ADMIN_KEY");
    match (url, key) {
        (Ok(url), Ok(key)) => (url, key),
        _ => panic!(
            "GHOST_URL and GHOST_ADMIN_KEY are not set: run the suite with testbed/test.sh, which starts Ghost, \
             or run `eval \"$(testbed/ghost.sh start DIR)\"` first"
        ),
    }
}

pub fn s3_client() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .endpoint_url(moto_endpoint())
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Creates a bucket with ACLs disabled (object ownership
/// BucketOwnerEnforced), the default for buckets created since 2023.
pub async fn bucket() -> String {
    let name = unique("tend-archive").to_lowercase();
    let client = s3_client();
    client
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("CreateBucket");
    let rule = OwnershipControlsRule::builder()
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .build()
        .unwrap();
    client
        .put_bucket_ownership_controls()
        .bucket(&name)
        .ownership_controls(OwnershipControls::builder().rules(rule).build().unwrap())
        .send()
        .await
        .expect("PutBucketOwnershipControls");
    name
}

/// Environment for one instagram loop (library or binary).
pub fn env_for(
    fake: &InstagramFake,
    bucket: &str,
    internal_tag: &str,
    prefix: &str,
) -> BTreeMap<String, String> {
    let (ghost_url, ghost_key) = ghost_env();
    [
        ("TEND_INSTAGRAM_ENABLED", "true"),
        ("TEND_INSTAGRAM_ACCESS_TOKEN", fake.token()),
        ("TEND_INSTAGRAM_API_URL", fake.graph_url()),
        ("TEND_INSTAGRAM_CDN_HOSTS", "127.0.0.1"),
        ("TEND_INSTAGRAM_BUCKET", bucket),
        ("TEND_INSTAGRAM_GHOST_URL", &ghost_url),
        ("TEND_INSTAGRAM_GHOST_ADMIN_KEY", &ghost_key),
        ("TEND_INSTAGRAM_INTERNAL_TAG", internal_tag),
        ("TEND_INSTAGRAM_PAGE_SIZE", "25"),
        ("TEND_ECS_CAPACITY_ENABLED", "false"),
        ("TEND_REDIS_URL", REDIS_URL),
        ("TEND_REDIS_KEY_PREFIX", prefix),
        ("TEND_AWS_REGION", "us-east-1"),
        ("TEND_AWS_S3_FORCE_PATH_STYLE", "true"),
        // A killed process's lease must not hold up the next run for long.
        ("TEND_RUNTIME_LEASE_TTL", "1s"),
        ("AWS_ENDPOINT_URL_S3", &moto_endpoint()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub struct Harness {
    pub reconciler: InstagramReconciler,
    pub ghost: Ghost,
    pub bucket: String,
    pub tag: String,
    pub registry: prometheus::Registry,
}

impl Harness {
    pub async fn new(fake: &InstagramFake) -> Self {
        Self::with(fake, &[]).await
    }

    /// Builds the loop; `extra` overrides environment entries.
    pub async fn with(fake: &InstagramFake, extra: &[(&str, &str)]) -> Self {
        let bucket = bucket().await;
        let tag = format!("#{}", unique("tend-test"));
        let prefix = unique("tendig");
        let mut env = env_for(fake, &bucket, &tag, &prefix);
        for (key, value) in extra {
            env.insert((*key).to_owned(), (*value).to_owned());
        }
        let config = Config::load(None, &env).expect("valid test config");
        let registry = prometheus::Registry::new();
        let redis = Redis::new(&config.redis).unwrap();
        let reconciler = tend::cmd::loops::build_instagram(&config, &registry, &redis, s3_client())
            .expect("loop builds");
        let (ghost_url, ghost_key) = ghost_env();
        let ghost = Ghost::new(
            reqwest::Client::new(),
            &ghost_url,
            &tend::config::Secret::new(ghost_key),
        )
        .unwrap();
        Self {
            reconciler,
            ghost,
            bucket,
            tag,
            registry,
        }
    }

    pub async fn pass(&self) -> Outcome {
        self.reconciler
            .reconcile(&CancellationToken::new())
            .await
            .unwrap_or_else(|error| panic!("pass failed: {}", tend::runtime::error_chain(&error)))
    }

    /// Posts with this harness's internal tag.
    pub async fn posts(&self) -> Vec<Post> {
        let slug = format!("hash-{}", self.tag.trim_start_matches('#').to_lowercase());
        self.ghost.posts_tagged(&slug).await.expect("list posts")
    }

    pub async fn post(&self, media_id: &str) -> Post {
        self.ghost
            .post_by_slug(&tend::instagram::slug(media_id))
            .await
            .expect("read post")
            .unwrap_or_else(|| panic!("no post for {media_id}"))
    }

    /// Every key in this harness's bucket, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut keys = list_keys(&self.bucket, "", None).await;
        keys.sort();
        keys
    }

    pub fn sample(&self, series: &str) -> f64 {
        tend::metrics::encode(&self.registry)
            .unwrap()
            .lines()
            .find_map(|line| {
                line.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }
}

/// Keys of the sidecars in `bucket`: one per archived item.
pub async fn sidecar_keys(bucket: &str) -> Vec<String> {
    // Sidecars sit directly under the prefix, the files in folders below.
    list_keys(bucket, "instagram/", Some("/")).await
}

/// Keys in `bucket` under `prefix`, all pages; with a `delimiter`, only
/// those not below a further delimiter.
async fn list_keys(bucket: &str, prefix: &str, delimiter: Option<&str>) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = s3_client()
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_delimiter(delimiter.map(str::to_owned))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        keys.extend(
            page.unwrap()
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    keys
}

/// Checks a finished backfill of `expected` items tagged `tag`: exactly
/// one post per item with its plain slug, one sidecar per item in
/// `bucket`, and every file a sidecar lists archived with its size. Reads
/// Ghost and S3 directly, never through a test's fault proxy.
pub async fn check_backfill(bucket: &str, tag: &str, expected: usize) {
    let (url, key) = ghost_env();
    let ghost = Ghost::new(
        reqwest::Client::new(),
        &url,
        &tend::config::Secret::new(key),
    )
    .unwrap();
    let tag_slug = format!("hash-{}", tag.trim_start_matches('#').to_lowercase());
    let posts = ghost.posts_tagged(&tag_slug).await.unwrap();
    assert_eq!(posts.len(), expected, "exactly one post per item");
    let mut slugs: Vec<&str> = posts.iter().map(|p| p.slug.as_str()).collect();
    slugs.sort_unstable();
    slugs.dedup();
    assert_eq!(slugs.len(), expected);
    assert!(
        slugs
            .iter()
            .all(|s| s.starts_with("instagram-") && !s.ends_with("-2")),
        "{slugs:?}"
    );

    let s3 = s3_client();
    let keys = sidecar_keys(bucket).await;
    for key in &keys {
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap();
        let sidecar: serde_json::Value = serde_json::from_slice(&body.into_bytes()).unwrap();
        for file in sidecar["files"].as_array().unwrap() {
            let head = s3
                .head_object()
                .bucket(bucket)
                .key(file["key"].as_str().unwrap())
                .send()
                .await
                .expect("archived file exists");
            assert_eq!(
                head.content_length().unwrap_or(-1) as u64,
                file["bytes"].as_u64().unwrap()
            );
        }
    }
    assert_eq!(keys.len(), expected, "one sidecar per item");
}
