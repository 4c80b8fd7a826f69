//! The instagram loop against the Instagram fake, moto's S3 and real Ghost.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tend::instagram::GhostError;
use tend::runtime::Reconciler;

use crate::support::instagram::Harness;
use crate::support::instagram_fake::InstagramFake;
use crate::support::unique;

/// A media id unique to this test run (Ghost is shared by all tests).
pub(crate) fn media_id(label: &str) -> String {
    unique(label).replace('-', "_")
}

fn image(id: &str, caption: Option<&str>, timestamp: &str) -> Value {
    let mut item = json!({"id": id, "media_type": "IMAGE", "timestamp": timestamp,
                          "permalink": format!("https://www.instagram.com/p/{id}/")});
    if let Some(caption) = caption {
        item["caption"] = json!(caption);
    }
    item
}

/// The html with every double-quoted attribute value removed.
fn outside_attributes(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("=\"") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('"') {
            Some(end) => rest = &after[end + 1..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

fn html(post: &tend::instagram::Post) -> &str {
    post.html.as_deref().unwrap_or_default()
}

#[tokio::test]
async fn captionless_media_get_distinct_posts() {
    let fake = InstagramFake::start().await;
    let (first, second) = (media_id("i1a"), media_id("i1b"));
    fake.set_media(&json!([
        image(&first, None, "2016-01-02T03:04:05+0000"),
        image(&second, None, "2016-01-02T05:06:07+0000"),
    ]))
    .await;
    let harness = Harness::new(&fake).await;
    harness.pass().await;

    let posts = harness.posts().await;
    assert_eq!(posts.len(), 2);
    let a = harness.post(&first).await;
    let b = harness.post(&second).await;
    assert_eq!(a.slug, format!("instagram-{first}"));
    assert_ne!(a.title, b.title);
    assert!(!a.title.contains("untitled"), "{}", a.title);
    assert!(
        a.published_at
            .as_deref()
            .unwrap_or_default()
            .starts_with("2016-01-02T03:04:05"),
        "{:?}",
        a.published_at
    );
    assert_eq!(a.status, "published");
    assert!(a.tags.iter().any(|t| t.name == "insta"));
}

#[tokio::test]
async fn caption_markup_stays_text() {
    let fake = InstagramFake::start().await;
    let id = media_id("i2");
    let caption = r#"Sunset <script>alert(1)</script> & "friends" <b>ok</b> <img src=x onerror=alert(2)> #beach @someone 🌅"#;
    fake.set_media(&json!([image(
        &id,
        Some(caption),
        "2017-05-06T07:08:09+0000"
    )]))
    .await;
    let harness = Harness::new(&fake).await;
    harness.pass().await;

    let post = harness.post(&id).await;
    let body = html(&post);
    // Inside a quoted attribute value `<` is plain text (HTML5 serialises it
    // unescaped there), so markup is looked for outside attribute values.
    let markup = outside_attributes(body);
    assert!(!markup.contains("<script"), "{body}");
    assert!(!markup.contains("<img src=x"), "{body}");
    assert!(!markup.contains("<b>"), "{body}");
    assert!(body.contains("&lt;script&gt;"), "{body}");
    assert!(body.contains("🌅"), "{body}");
    assert!(post.title.contains("Sunset"), "{}", post.title);
}

#[tokio::test]
async fn long_caption_title_shortened() {
    let fake = InstagramFake::start().await;
    let id = media_id("i3");
    let caption: String = "longword ".repeat(256).chars().take(2300).collect();
    fake.set_media(&json!([image(
        &id,
        Some(&caption),
        "2018-01-01T00:00:00+0000"
    )]))
    .await;
    let harness = Harness::new(&fake).await;
    harness.pass().await;

    let post = harness.post(&id).await;
    assert!(
        post.title.chars().count() <= 255,
        "{}",
        post.title.chars().count()
    );
    assert!(post.title.ends_with("longword…"), "{}", post.title);
    assert!(
        html(&post).contains(caption.trim_end()),
        "full caption in the body"
    );
}

#[tokio::test]
async fn post_keeps_image_and_link() {
    let fake = InstagramFake::start().await;
    let id = media_id("i4");
    fake.set_media(&json!([image(
        &id,
        Some("linked"),
        "2018-02-02T00:00:00+0000"
    )]))
    .await;
    let harness = Harness::new(&fake).await;
    harness.pass().await;

    let post = harness.post(&id).await;
    let body = html(&post);
    assert!(body.contains("<img"), "{body}");
    assert!(
        body.contains(&format!("https://www.instagram.com/p/{id}/")),
        "{body}"
    );
    assert!(post.feature_image.is_some());
}

#[tokio::test]
async fn expired_cdn_url_fetched_again() {
    // URLs live one second; the large video ahead of the photo takes longer
    // than that to archive, so the photo's listed URL expires first.
    let fake = InstagramFake::start_with_args(&["--url-ttl", "1s"]).await;
    let (video, photo) = (media_id("i5v"), media_id("i5p"));
    fake.set_media(&json!([
        {"id": video, "media_type": "VIDEO", "caption": "big", "timestamp": "2019-01-02T00:00:00+0000",
         "size_bytes": 48 * 1024 * 1024},
        image(&photo, Some("late"), "2019-01-01T00:00:00+0000"),
    ]))
    .await;
    let harness = Harness::new(&fake).await;
    harness.pass().await;

    assert!(harness.sample("tend_instagram_url_refreshes_total") >= 1.0);
    let keys = harness.keys().await;
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("instagram/{photo}/"))),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("instagram/{photo}.json")),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("instagram/{video}/{video}.mp4")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn carousel_archived_and_posted_in_order() {
    let fake = InstagramFake::start().await;
    let id = media_id("i6");
    let (c1, c2, c3) = (format!("{id}_c1"), format!("{id}_c2"), format!("{id}_c3"));
    fake.set_media(&json!([{"id": id, "media_type": "CAROUSEL_ALBUM", "caption": "three",
        "timestamp": "2020-03-04T05:06:07+0000",
        "children": [{"id": c1, "media_type": "IMAGE"}, {"id": c2, "media_type": "VIDEO"}, {"id": c3, "media_type": "IMAGE"}]}]))
    .await;
    let harness = Harness::new(&fake).await;
    harness.pass().await;

    let keys = harness.keys().await;
    for child in [&c1, &c2, &c3] {
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&format!("instagram/{id}/{child}."))),
            "{child} in {keys:?}"
        );
    }
    assert!(
        keys.iter().any(|k| k.contains(&format!("{c2}.thumbnail."))),
        "{keys:?}"
    );
    let post = harness.post(&id).await;
    let body = html(&post);
    let positions: Vec<usize> = [&c1, &c2, &c3]
        .iter()
        .map(|c| body.find(c.as_str()).expect("child shown"))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "order {positions:?} in {body}"
    );
    assert!(body.contains("<video"), "{body}");
    assert!(body.contains("controls"), "{body}");
}

#[tokio::test]
async fn existing_post_found_not_duplicated() {
    let fake = InstagramFake::start().await;
    let id = media_id("i7");
    fake.set_media(&json!([image(
        &id,
        Some("once"),
        "2021-01-01T00:00:00+0000"
    )]))
    .await;
    let harness = Harness::new(&fake).await;
    // As if a previous run died right after Ghost accepted the create.
    harness.pass().await;
    let s3 = crate::support::instagram::s3_client();
    s3.delete_object()
        .bucket(&harness.bucket)
        .key(format!("instagram/{id}.json"))
        .send()
        .await
        .unwrap();
    harness.pass().await;
    harness.pass().await;

    let posts = harness.posts().await;
    assert_eq!(
        posts.len(),
        1,
        "{:?}",
        posts.iter().map(|p| &p.slug).collect::<Vec<_>>()
    );
    assert_eq!(posts[0].slug, format!("instagram-{id}"));
}

#[tokio::test]
async fn caption_edit_updates_and_keeps_other_edits() {
    let fake = InstagramFake::start().await;
    let id = media_id("i8");
    fake.set_media(&json!([image(
        &id,
        Some("before"),
        "2021-02-02T00:00:00+0000"
    )]))
    .await;
    let harness = Harness::new(&fake).await;
    harness.pass().await;
    let post = harness.post(&id).await;
    // Ghost's updated_at has whole seconds: let the edit below change it.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Someone adds a tag in Ghost; a stale write then collides.
    let mut fields = serde_json::json!({"tags": [{"name": "editor-pick"}], "custom_excerpt": "Chosen by the editor",
                                        "updated_at": post.updated_at});
    for tag in &post.tags {
        fields["tags"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": tag.name}));
    }
    edit_post(&post.id, &fields).await;
    let stale = harness.post(&id).await;
    let collision = harness
        .ghost
        .update(&post.id, &post.updated_at, &tend_fields(&stale))
        .await;
    assert!(
        matches!(collision, Err(GhostError::UpdateCollision(_))),
        "{collision:?}"
    );

    fake.set_caption(&id, Some("after")).await;
    harness.pass().await;
    let updated = harness.post(&id).await;
    assert!(html(&updated).contains("after"), "{}", html(&updated));
    assert_eq!(updated.title, "after");
    assert!(
        updated.tags.iter().any(|t| t.name == "editor-pick"),
        "{:?}",
        updated.tags
    );
    assert_eq!(
        updated.custom_excerpt.as_deref(),
        Some("Chosen by the editor")
    );
    assert_eq!(harness.posts().await.len(), 1);
}

/// The fields of `post` as tend would send them, for the collision check.
fn tend_fields(post: &tend::instagram::Post) -> tend::instagram::PostFields {
    tend::instagram::PostFields {
        title: post.title.clone(),
        slug: post.slug.clone(),
        html: post.html.clone().unwrap_or_default(),
        status: post.status.clone(),
        published_at: post.published_at.clone().unwrap_or_default(),
        feature_image: post.feature_image.clone(),
        tags: post.tags.clone(),
    }
}

/// Edits a post directly through the Admin API, as a person in Ghost would.
async fn edit_post(id: &str, fields: &Value) {
    let (url, key) = crate::support::instagram::ghost_env();
    let ghost = tend::instagram::Ghost::new(
        reqwest::Client::new(),
        &url,
        &tend::config::Secret::new(key),
    )
    .unwrap();
    let response = reqwest::Client::new()
        .put(format!("{}/posts/{id}/", ghost.admin_api()))
        .header("Authorization", ghost.authorization())
        .json(&json!({"posts": [fields]}))
        .send()
        .await
        .expect("Ghost answers");
    assert!(
        response.status().is_success(),
        "edit failed: {}",
        response.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn rerun_changes_nothing() {
    let fake = InstagramFake::start().await;
    let base = media_id("rerun");
    let items: Vec<Value> = (0..30)
        .map(|n| {
            image(
                &format!("{base}_{n:02}"),
                Some(&format!("photo {n}")),
                &format!("2022-01-{:02}T00:00:00+0000", n + 1),
            )
        })
        .collect();
    fake.set_media(&Value::Array(items)).await;
    let harness = Harness::new(&fake).await;
    harness.pass().await;
    assert_eq!(harness.posts().await.len(), 30);

    fake.reset_calls().await;
    let outcome = harness
        .reconciler
        .reconcile(&tend::runtime::CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.summary["archived"], 0);
    assert_eq!(outcome.summary["posts_created"], 0);
    assert_eq!(outcome.summary["posts_updated"], 0);
    let calls = fake.calls().await;
    assert_eq!(calls.get("me/media").copied().unwrap_or(0), 1, "{calls:?}");
    assert_eq!(calls.get("cdn").copied().unwrap_or(0), 0, "{calls:?}");
    assert_eq!(harness.posts().await.len(), 30);
}

#[tokio::test]
async fn throttling_pauses_the_pass() {
    let fake = InstagramFake::start().await;
    let harness = Harness::new(&fake).await;
    // A first pass refreshes the token; the fault then hits the media list.
    harness.pass().await;
    fake.set_media(&json!([image(
        &media_id("thr"),
        Some("x"),
        "2023-01-01T00:00:00+0000"
    )]))
    .await;
    fake.inject_fault(4, 1).await;
    let outcome = harness.pass().await;
    assert!(
        outcome
            .requeue_after
            .is_some_and(|d| d >= Duration::from_secs(60))
    );
    assert_eq!(harness.sample("tend_instagram_throttled_total"), 1.0);
    assert!(harness.posts().await.is_empty());
}

#[tokio::test]
async fn invalid_token_reported_clearly() {
    let fake = InstagramFake::start().await;
    let harness = Harness::with(&fake, &[("TEND_INSTAGRAM_ACCESS_TOKEN", "IGAAwrong")]).await;
    let error = harness
        .reconciler
        .reconcile(&tend::runtime::CancellationToken::new())
        .await
        .unwrap_err();
    let text = tend::runtime::error_chain(&error);
    assert!(text.contains("code 190"), "{text}");
    assert!(text.contains("TEND_INSTAGRAM_ACCESS_TOKEN"), "{text}");
    assert!(
        !text.contains("IGAAwrong"),
        "the token must not appear: {text}"
    );
}

#[tokio::test]
async fn foreign_media_host_refused() {
    let fake = InstagramFake::start().await;
    fake.set_media(&json!([image(
        &media_id("host"),
        Some("x"),
        "2023-02-01T00:00:00+0000"
    )]))
    .await;
    let harness = Harness::with(&fake, &[("TEND_INSTAGRAM_CDN_HOSTS", "cdninstagram.com")]).await;
    let error = harness
        .reconciler
        .reconcile(&tend::runtime::CancellationToken::new())
        .await
        .unwrap_err();
    let text = tend::runtime::error_chain(&error);
    assert!(text.contains("not in instagram.cdn_hosts"), "{text}");
    assert!(harness.keys().await.is_empty());
}

/// Builds `tend reconcile instagram --once` followed by `extra_args`. The
/// child's environment holds only PATH, dummy AWS credentials for moto, the
/// switch that turns off EC2 metadata lookups and `env`, so nothing from the
/// caller's environment (an AWS profile, TEND_ variables) reaches it.
pub(crate) fn reconcile_once(
    env: &BTreeMap<String, String>,
    extra_args: &[&str],
) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tend"));
    command
        .args(["reconcile", "instagram", "--once"])
        .args(extra_args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env);
    command
}

#[tokio::test]
async fn kills_during_backfill_leave_one_post_each() {
    // Enough items that the backfill outlasts most of the 20 kills.
    let total = 120;
    let fake = InstagramFake::start().await;
    let prefix = media_id("crash");
    let reply = fake
        .generate(
            &json!({"count": total, "prefix": prefix, "start": "2020-01-01T00:00:00+0000",
                          "with_carousels": true, "with_videos": true}),
        )
        .await;
    assert_eq!(reply["created"], total, "{reply}");
    let bucket = crate::support::instagram::bucket().await;
    let tag = format!("#{}", unique("tend-crash"));
    let env = crate::support::instagram::env_for(&fake, &bucket, &tag, &unique("tendcrash"));
    let run = || {
        reconcile_once(&env, &[])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tend runs")
    };
    // Kill at 20 random points of the backfill, restarting each time. The
    // seed is printed so a failure can be replayed.
    let seed = fastrand::u64(..);
    println!("kill points seed: {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut mid_backfill = 0;
    for _ in 0..20 {
        let millis = rng.u64(100..1500);
        let mut child = run();
        tokio::time::sleep(Duration::from_millis(millis)).await;
        let _ = child.kill();
        let _ = child.wait();
        if crate::support::instagram::sidecar_keys(&bucket).await.len() < total {
            mid_backfill += 1;
        }
    }
    let left = total - crate::support::instagram::sidecar_keys(&bucket).await.len();
    let recovery = std::time::Instant::now();
    let status = run().wait().expect("tend exits");
    assert!(status.success(), "final pass failed: {status:?}");
    println!(
        "instagram kill -9: {mid_backfill} of 20 kills with items left; {left} of {total} left \
         for the last run, which took {:.1?}",
        recovery.elapsed()
    );

    crate::support::instagram::check_backfill(&bucket, &tag, total).await;
}

#[tokio::test]
async fn refreshed_token_survives_restart() {
    let fake = InstagramFake::start().await;
    fake.set_media(&json!([image(
        &media_id("tok"),
        Some("x"),
        "2024-03-01T00:00:00+0000"
    )]))
    .await;
    let prefix = unique("tendtoken");
    let first = Harness::with(&fake, &[("TEND_REDIS_KEY_PREFIX", &prefix)]).await;
    first.pass().await;
    assert!(first.sample("tend_instagram_token_expiry_timestamp_seconds") > 1.0e9);
    assert_eq!(
        fake.calls()
            .await
            .get("refresh_access_token")
            .copied()
            .unwrap_or(0),
        1
    );

    // The configured token stops working; a new start uses the stored one.
    fake.revoke_token(fake.token()).await;
    let second = Harness::with(&fake, &[("TEND_REDIS_KEY_PREFIX", &prefix)]).await;
    second.pass().await;
    assert_eq!(
        fake.calls()
            .await
            .get("refresh_access_token")
            .copied()
            .unwrap_or(0),
        1,
        "no second refresh"
    );
    crate::support::env::delete_keys(&format!("{prefix}:*"));
}

#[tokio::test]
async fn dry_run_prints_plan_and_writes_nothing() {
    let fake = InstagramFake::start().await;
    let id = media_id("dry");
    fake.set_media(&json!([image(
        &id,
        Some("planned"),
        "2024-04-01T00:00:00+0000"
    )]))
    .await;
    let bucket = crate::support::instagram::bucket().await;
    let tag = format!("#{}", unique("tend-dry"));
    let env = crate::support::instagram::env_for(&fake, &bucket, &tag, &unique("tenddry"));
    let output = reconcile_once(&env, &["--dry-run"])
        .output()
        .expect("tend runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("Archive {id} (planned)")),
        "{stdout}"
    );
    assert!(stdout.contains("found not archived: 1"), "{stdout}");
    let keys = crate::support::instagram::s3_client()
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(keys.contents().is_empty(), "a dry run writes nothing");
    assert_eq!(fake.calls().await.get("cdn").copied().unwrap_or(0), 0);
}

#[tokio::test]
async fn rejected_stored_token_falls_back() {
    let fake = InstagramFake::start().await;
    fake.set_media(&json!([image(
        &media_id("fall"),
        Some("x"),
        "2024-05-01T00:00:00+0000"
    )]))
    .await;
    let prefix = unique("tendfall");
    let first = Harness::with(&fake, &[("TEND_REDIS_KEY_PREFIX", &prefix)]).await;
    first.pass().await;
    // The refreshed token stored in Redis gets revoked; the configured one works.
    let tokens = fake.tokens().await;
    let refreshed = tokens
        .as_array()
        .or_else(|| tokens["tokens"].as_array())
        .and_then(|list| {
            list.iter()
                .filter_map(|t| t["token"].as_str().or(t.as_str()))
                .find(|t| *t != fake.token())
                .map(str::to_owned)
        })
        .expect("a refreshed token exists");
    fake.revoke_token(&refreshed).await;
    fake.set_token(fake.token(), None, None).await;
    let second = Harness::with(&fake, &[("TEND_REDIS_KEY_PREFIX", &prefix)]).await;
    second.pass().await;
    crate::support::env::delete_keys(&format!("{prefix}:*"));
}
