//! The Instagram fake over plain HTTP: paging, field selection, signed CDN
//! URLs and their expiry, the served PNG and video files, throttling,
//! token errors, token refresh and the admin endpoints.

use std::io::Write;

use serde_json::{Value, json};

use crate::support::instagram_fake::{GraphReply, InstagramFake};

const ALL_FIELDS: &str = "id,caption,media_type,media_url,permalink,thumbnail_url,timestamp,\
                          username,children{id,media_type,media_url,thumbnail_url,timestamp}";

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Returns an image, a video, a carousel of an image and a video, and an
/// image without caption, one day apart and listed oldest first.
fn mixed_media() -> Value {
    json!([
        { "id": "17900000000000001", "media_type": "IMAGE", "caption": "first",
          "timestamp": "2016-01-01T00:00:00+0000",
          "permalink": "https://www.instagram.com/p/AAA/" },
        { "id": "17900000000000002", "media_type": "VIDEO", "caption": "clip",
          "timestamp": "2016-01-02T00:00:00+0000", "size_bytes": 4096 },
        { "id": "17900000000000003", "media_type": "CAROUSEL_ALBUM", "caption": "album",
          "timestamp": "2016-01-03T01:00:00+0100",
          "children": [
              { "id": "17900000000000004", "media_type": "IMAGE" },
              { "id": "17900000000000005", "media_type": "VIDEO", "size_bytes": 2048 }
          ] },
        { "id": "17900000000000006", "media_type": "IMAGE",
          "timestamp": "2016-01-04T00:00:00+0000" }
    ])
}

async fn fake_with_mixed_media() -> InstagramFake {
    let fake = InstagramFake::start().await;
    fake.set_media(&mixed_media()).await;
    fake
}

/// Returns the posts of `/me/media` keyed by id.
async fn media_by_id(fake: &InstagramFake, fields: &str) -> serde_json::Map<String, Value> {
    let reply = fake
        .graph_get("/v21.0/me/media", &[("fields", fields)])
        .await;
    assert_eq!(reply.status, 200, "listing failed: {}", reply.body);
    let posts = reply.body["data"].as_array().expect("data is an array");
    let by_id = posts.iter().map(|post| {
        let id = post["id"].as_str().expect("id is a string").to_owned();
        (id, post.clone())
    });
    by_id.collect()
}

/// Fetches the `media_url` (or another URL field) of one media object.
async fn fresh_url(fake: &InstagramFake, id: &str, field: &str) -> String {
    let reply = fake
        .graph_get(&format!("/{id}"), &[("fields", field)])
        .await;
    assert_eq!(reply.status, 200, "GET /{id} failed: {}", reply.body);
    let url = reply.body[field].as_str();
    url.unwrap_or_else(|| panic!("no {field} in {}", reply.body))
        .to_owned()
}

/// Returns the Graph error object of a failed reply.
fn graph_error(reply: &GraphReply) -> &Value {
    assert!(
        reply.body["error"].is_object(),
        "not an error: {}",
        reply.body
    );
    &reply.body["error"]
}

/// CRC-32 as PNG defines it, computed bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[tokio::test]
async fn media_pages_through_250_items() {
    let fake = InstagramFake::start().await;
    let generated = fake.generate(&json!({ "count": 250 })).await;
    assert_eq!(generated["total"], 250);

    let first = fake
        .graph_get(
            "/v21.0/me/media",
            &[("fields", "id,timestamp"), ("limit", "100")],
        )
        .await;
    let mut pages = vec![first];
    while let Some(next) = pages.last().unwrap().body["paging"]["next"].as_str() {
        assert!(pages.len() < 5, "paging does not end");
        pages.push(fake.get_url(next, &[]).await);
    }

    let sizes: Vec<usize> = pages
        .iter()
        .map(|page| page.body["data"].as_array().expect("data array").len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    let last = pages.last().unwrap();
    assert!(last.body["paging"].get("next").is_none(), "{}", last.body);
    assert!(last.body["paging"]["previous"].is_string(), "{}", last.body);
    assert!(last.body["paging"]["cursors"]["after"].is_string());

    let timestamps: Vec<&str> = pages
        .iter()
        .flat_map(|page| page.body["data"].as_array().unwrap())
        .map(|post| post["timestamp"].as_str().expect("timestamp"))
        .collect();
    assert_eq!(timestamps.len(), 250);
    assert!(
        timestamps.windows(2).all(|pair| pair[0] > pair[1]),
        "not newest first"
    );
    assert_eq!(timestamps[0], "2020-01-11T09:00:00+0000");
    let ids: Vec<&Value> = pages
        .iter()
        .flat_map(|page| page.body["data"].as_array().unwrap())
        .map(|post| &post["id"])
        .collect();
    assert_eq!(ids[0], "18000000000000250");
    assert_eq!(ids[249], "18000000000000001");
}

#[tokio::test]
async fn default_limit_is_twenty_five() {
    let fake = InstagramFake::start().await;
    fake.generate(&json!({ "count": 30 })).await;

    let reply = fake.graph_get("/me/media", &[]).await;

    let data = reply.body["data"].as_array().expect("data array");
    assert_eq!(data.len(), 25);
    assert_eq!(data[0], json!({ "id": "18000000000000030" }));
    assert!(reply.body["paging"]["next"].is_string());
}

#[tokio::test]
async fn limit_above_hundred_is_rejected() {
    let fake = InstagramFake::start().await;

    let reply = fake.graph_get("/me/media", &[("limit", "101")]).await;

    assert_eq!(reply.status, 400);
    let error = graph_error(&reply);
    assert_eq!(error["code"], 100);
    assert!(error["message"].as_str().unwrap().starts_with("(#100) "));
}

#[tokio::test]
async fn fields_omit_absent_caption() {
    let fake = fake_with_mixed_media().await;

    let posts = media_by_id(&fake, "id,caption,timestamp").await;

    let uncaptioned = &posts["17900000000000006"];
    assert!(uncaptioned.get("caption").is_none(), "{uncaptioned}");
    let mut keys: Vec<&String> = uncaptioned.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["id", "timestamp"]);
    assert_eq!(posts["17900000000000001"]["caption"], "first");
    // The seed gave this timestamp at +0100.
    assert_eq!(
        posts["17900000000000003"]["timestamp"],
        "2016-01-03T00:00:00+0000"
    );
}

#[tokio::test]
async fn all_fields_by_media_type() {
    let fake = fake_with_mixed_media().await;

    let posts = media_by_id(&fake, ALL_FIELDS).await;

    let image = &posts["17900000000000001"];
    assert_eq!(image["media_type"], "IMAGE");
    assert_eq!(image["permalink"], "https://www.instagram.com/p/AAA/");
    assert!(image["username"].is_string());
    assert!(image.get("thumbnail_url").is_none(), "{image}");
    assert!(image.get("children").is_none(), "{image}");
    let media_url = image["media_url"].as_str().unwrap();
    assert!(
        media_url.starts_with(&format!("{}/cdn/", fake.graph_url())),
        "{media_url}"
    );
    assert!(
        media_url.contains("?oe=") && media_url.contains("&oh="),
        "{media_url}"
    );

    let video = &posts["17900000000000002"];
    assert!(
        video["media_url"].as_str().unwrap().contains(".mp4?"),
        "{video}"
    );
    assert!(
        video["thumbnail_url"].as_str().unwrap().contains(".png?"),
        "{video}"
    );
    let default_permalink = video["permalink"].as_str().unwrap();
    assert!(default_permalink.starts_with("https://www.instagram.com/p/"));
}

#[tokio::test]
async fn carousel_lists_children_without_media_url() {
    let fake = fake_with_mixed_media().await;

    let posts = media_by_id(&fake, ALL_FIELDS).await;

    let album = &posts["17900000000000003"];
    assert_eq!(album["media_type"], "CAROUSEL_ALBUM");
    assert!(album.get("media_url").is_none(), "{album}");
    let children = album["children"]["data"].as_array().expect("children.data");
    assert_eq!(children.len(), 2);
    assert_eq!(children[0]["id"], "17900000000000004");
    assert_eq!(children[0]["media_type"], "IMAGE");
    assert!(children[0]["media_url"].is_string());
    assert!(children[0].get("thumbnail_url").is_none());
    assert_eq!(children[0]["timestamp"], album["timestamp"]);
    assert_eq!(children[1]["media_type"], "VIDEO");
    assert!(children[1]["thumbnail_url"].is_string());

    let edge = fake
        .graph_get("/17900000000000003/children", &[("fields", "id")])
        .await;
    assert_eq!(edge.body["data"][1], json!({ "id": "17900000000000005" }));
}

#[tokio::test]
async fn child_resolves_by_id() {
    let fake = fake_with_mixed_media().await;

    let reply = fake
        .graph_get(
            "/v21.0/17900000000000005",
            &[("fields", "id,media_type,caption,media_url")],
        )
        .await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["media_type"], "VIDEO");
    assert!(reply.body.get("caption").is_none(), "{}", reply.body);
    assert!(reply.body["media_url"].as_str().unwrap().contains(".mp4?"));
}

#[tokio::test]
async fn unknown_media_returns_code_100() {
    let fake = fake_with_mixed_media().await;

    let missing = fake.graph_get("/404", &[("fields", "id")]).await;
    let bad_field = fake
        .graph_get("/17900000000000001", &[("fields", "id,likes")])
        .await;

    assert_eq!(missing.status, 400);
    assert_eq!(graph_error(&missing)["code"], 100);
    assert_eq!(graph_error(&missing)["error_subcode"], 33);
    assert_eq!(bad_field.status, 400);
    assert_eq!(graph_error(&bad_field)["code"], 100);
}

#[tokio::test]
async fn me_returns_account_fields() {
    let fake = fake_with_mixed_media().await;

    let fields = [("fields", "id,username,account_type,media_count")];
    let reply = fake.graph_get("/v21.0/me", &fields).await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["media_count"], 4);
    assert_eq!(reply.body["username"], "tend.fake");
    assert_eq!(reply.body["account_type"], "BUSINESS");
    assert!(reply.body["id"].is_string());
}

#[tokio::test]
async fn cdn_expiry_then_refetch_works() {
    let fake = fake_with_mixed_media().await;
    let url = fresh_url(&fake, "17900000000000001", "media_url").await;
    let before = fake.http().get(&url).send().await.unwrap();
    assert_eq!(before.status().as_u16(), 200);

    fake.expire_cdn_urls().await;
    let expired = fake.http().get(&url).send().await.unwrap();
    let refetched = fresh_url(&fake, "17900000000000001", "media_url").await;
    let after = fake.http().get(&refetched).send().await.unwrap();

    assert_eq!(expired.status().as_u16(), 403);
    assert_eq!(expired.text().await.unwrap(), "URL signature expired");
    assert_ne!(refetched, url);
    assert_eq!(after.status().as_u16(), 200);
}

#[tokio::test]
async fn cdn_url_expires_after_ttl() {
    let fake = InstagramFake::start_with_args(&["--url-ttl", "1s"]).await;
    fake.set_media(&mixed_media()).await;
    let url = fresh_url(&fake, "17900000000000001", "media_url").await;

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let response = fake.http().get(&url).send().await.unwrap();

    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(response.text().await.unwrap(), "URL signature expired");
}

#[tokio::test]
async fn cdn_rejects_tampered_signature() {
    let fake = fake_with_mixed_media().await;
    let url = fresh_url(&fake, "17900000000000001", "media_url").await;
    let other = fresh_url(&fake, "17900000000000006", "media_url").await;
    // The signature of one file on the path of another.
    let (_, other_query) = other.split_once('?').unwrap();
    let (path, _) = url.split_once('?').unwrap();

    let response = fake
        .http()
        .get(format!("{path}?{other_query}"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(response.text().await.unwrap(), "Bad URL hash");
}

#[tokio::test]
async fn png_has_valid_ihdr_crc() {
    let fake = fake_with_mixed_media().await;
    let url = fresh_url(&fake, "17900000000000001", "media_url").await;

    let response = fake.http().get(&url).send().await.unwrap();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let length = response.content_length();
    let bytes = response.bytes().await.unwrap();

    assert_eq!(content_type, "image/png");
    assert_eq!(length, Some(bytes.len() as u64));
    assert_eq!(bytes[..8], PNG_SIGNATURE);
    assert_eq!(bytes[8..16], [0, 0, 0, 13, b'I', b'H', b'D', b'R']);
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (64, 64));
    let stored_crc = u32::from_be_bytes(bytes[29..33].try_into().unwrap());
    assert_eq!(crc32(&bytes[12..29]), stored_crc);
    assert_eq!(bytes[bytes.len() - 12..][4..8], *b"IEND");
}

#[tokio::test]
async fn images_differ_per_media_id() {
    let fake = fake_with_mixed_media().await;
    let first = fresh_url(&fake, "17900000000000001", "media_url").await;
    let second = fresh_url(&fake, "17900000000000006", "media_url").await;

    let first = fake.http().get(&first).send().await.unwrap().bytes().await;
    let second = fake.http().get(&second).send().await.unwrap().bytes().await;

    assert_ne!(first.unwrap(), second.unwrap());
}

#[tokio::test]
async fn video_streams_64_mib() {
    let fake = InstagramFake::start().await;
    let size: u64 = 64 * 1024 * 1024;
    let video = json!([{ "id": "17900000000000009", "media_type": "VIDEO",
        "timestamp": "2020-01-01T00:00:00+0000", "size_bytes": size }]);
    fake.set_media(&video).await;
    let url = fresh_url(&fake, "17900000000000009", "media_url").await;

    let mut response = fake.http().get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "video/mp4");
    assert_eq!(response.content_length(), Some(size));
    let mut total = 0u64;
    let mut head = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        if head.len() < 12 {
            head.extend_from_slice(&chunk[..chunk.len().min(12)]);
        }
        total += chunk.len() as u64;
    }

    assert_eq!(total, size);
    assert_eq!(head[4..12], *b"ftypisom");
}

#[tokio::test]
async fn video_serves_byte_range() {
    let fake = fake_with_mixed_media().await;
    let url = fresh_url(&fake, "17900000000000002", "media_url").await;
    let whole = fake
        .http()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let response = fake
        .http()
        .get(&url)
        .header("range", "bytes=4000-")
        .send()
        .await
        .unwrap();

    assert_eq!(whole.len(), 4096);
    assert_eq!(response.status().as_u16(), 206);
    assert_eq!(response.headers()["content-range"], "bytes 4000-4095/4096");
    assert_eq!(response.bytes().await.unwrap(), whole[4000..]);
}

#[tokio::test]
async fn throttling_fault_reports_full_usage() {
    let fake = fake_with_mixed_media().await;
    fake.inject_fault(4, 2).await;

    let first = fake.graph_get("/me", &[]).await;
    let second = fake.graph_get("/me/media", &[]).await;
    let third = fake.graph_get("/me", &[]).await;

    for reply in [&first, &second] {
        assert_eq!(reply.status, 403);
        let error = graph_error(reply);
        assert_eq!(error["code"], 4);
        assert_eq!(error["type"], "OAuthException");
        assert_eq!(error["message"], "(#4) Application request limit reached");
        assert!(error["fbtrace_id"].is_string());
        assert_eq!(reply.app_usage()["call_count"], 100);
        assert!(reply.header("x-business-use-case-usage").is_some());
    }
    assert_eq!(third.status, 200);
    let usage = third.app_usage();
    assert!(usage["call_count"].as_u64().unwrap() < 100, "{usage}");
    assert!(usage["total_time"].is_u64(), "{usage}");
    assert!(usage["total_cputime"].is_u64(), "{usage}");
}

#[tokio::test]
async fn usage_header_follows_admin_value() {
    let fake = InstagramFake::start().await;
    let usage = json!({ "call_count": 85, "total_cputime": 10, "total_time": 40 });
    fake.set_usage(Some(&usage)).await;

    let reply = fake.graph_get("/me", &[]).await;

    assert_eq!(reply.app_usage(), usage);
}

#[tokio::test]
async fn wrong_token_returns_code_190() {
    let fake = InstagramFake::start().await;

    let url = format!("{}/v21.0/me", fake.graph_url());
    let reply = fake.get_url(&url, &[("access_token", "not-a-token")]).await;

    assert_eq!(reply.status, 400);
    let error = graph_error(&reply);
    assert_eq!(error["code"], 190);
    assert_eq!(error["error_subcode"], 467);
    assert_eq!(error["type"], "OAuthException");
    assert!(reply.header("x-app-usage").is_some());
}

#[tokio::test]
async fn expired_token_returns_subcode_463() {
    let fake = InstagramFake::start().await;
    let created = Some("2016-01-01T00:00:00+0000");
    fake.set_token(fake.token(), created, Some("2016-03-01T00:00:00+0000"))
        .await;

    let reply = fake.graph_get("/me", &[]).await;

    assert_eq!(reply.status, 400);
    let error = graph_error(&reply);
    assert_eq!(error["code"], 190);
    assert_eq!(error["error_subcode"], 463);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("Session has expired on Tuesday, 01-Mar-16"),
        "{message}"
    );
}

#[tokio::test]
async fn token_fault_fails_next_calls() {
    let fake = InstagramFake::start().await;
    fake.inject_fault(190, 1).await;

    let failed = fake.graph_get("/me", &[]).await;
    let recovered = fake.graph_get("/me", &[]).await;

    assert_eq!(graph_error(&failed)["code"], 190);
    assert_eq!(recovered.status, 200);
}

#[tokio::test]
async fn refresh_issues_new_token() {
    let fake = InstagramFake::start().await;
    let url = format!("{}/refresh_access_token", fake.graph_url());
    let params = [
        ("grant_type", "ig_refresh_token"),
        ("access_token", fake.token()),
    ];

    let refreshed = fake.get_url(&url, &params).await;

    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(refreshed.body["token_type"], "bearer");
    assert_eq!(refreshed.body["expires_in"], 60 * 86_400);
    let new_token = refreshed.body["access_token"].as_str().unwrap();
    assert_ne!(new_token, fake.token());
    let me = format!("{}/me", fake.graph_url());
    let with_new = fake.get_url(&me, &[("access_token", new_token)]).await;
    let with_old = fake.get_url(&me, &[("access_token", fake.token())]).await;
    assert_eq!(with_new.status, 200);
    assert_eq!(with_old.status, 200);

    fake.revoke_token(fake.token()).await;
    let revoked = fake.get_url(&me, &[("access_token", fake.token())]).await;
    assert_eq!(graph_error(&revoked)["code"], 190);
    assert_eq!(fake.tokens().await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn refresh_rejects_young_token() {
    let fake = InstagramFake::start().await;
    fake.set_token("IGAAyoungtoken", None, None).await;
    let url = format!("{}/refresh_access_token", fake.graph_url());
    let params = [
        ("grant_type", "ig_refresh_token"),
        ("access_token", "IGAAyoungtoken"),
    ];

    let reply = fake.get_url(&url, &params).await;

    assert_eq!(reply.status, 400);
    assert_eq!(graph_error(&reply)["code"], 100);
}

#[tokio::test]
async fn caption_change_and_delete_show() {
    let fake = fake_with_mixed_media().await;

    fake.set_caption("17900000000000001", Some("edited ✨"))
        .await;
    fake.set_caption("17900000000000002", None).await;
    fake.delete_media("17900000000000003").await;
    let posts = media_by_id(&fake, "id,caption").await;
    let deleted_child = fake.graph_get("/17900000000000004", &[]).await;

    assert_eq!(posts["17900000000000001"]["caption"], "edited ✨");
    assert!(posts["17900000000000002"].get("caption").is_none());
    assert!(!posts.contains_key("17900000000000003"));
    assert_eq!(posts.len(), 3);
    assert_eq!(deleted_child.status, 400);
}

#[tokio::test]
async fn calls_count_per_endpoint_kind() {
    let fake = fake_with_mixed_media().await;
    let url = fresh_url(&fake, "17900000000000001", "media_url").await;
    fake.http().get(&url).send().await.unwrap();
    fake.graph_get("/me", &[]).await;
    fake.graph_get("/me/media", &[]).await;
    fake.graph_get("/me/media", &[]).await;

    let calls = fake.calls().await;
    fake.reset_calls().await;
    let after_reset = fake.calls().await;

    assert_eq!(calls["media"], 1);
    assert_eq!(calls["cdn"], 1);
    assert_eq!(calls["me"], 1);
    assert_eq!(calls["me/media"], 2);
    assert!(after_reset.is_empty(), "{after_reset:?}");
}

#[tokio::test]
async fn seed_file_sets_account_and_media() {
    let seed = json!({
        "account": { "id": "17841400000000042", "username": "seeded" },
        "media": mixed_media(),
    });
    let mut file = tempfile::NamedTempFile::new().expect("failed to create a temporary file");
    file.write_all(seed.to_string().as_bytes()).unwrap();
    let path = file.path().to_str().unwrap();
    let fake = InstagramFake::start_with_args(&["--seed", path]).await;

    let me = fake
        .graph_get(
            "/17841400000000042",
            &[("fields", "id,username,media_count")],
        )
        .await;

    assert_eq!(me.body["username"], "seeded");
    assert_eq!(me.body["media_count"], 4);
}

#[tokio::test]
async fn invalid_media_is_rejected() {
    let fake = InstagramFake::start().await;
    let image_with_size = json!([{ "id": "1", "media_type": "IMAGE",
        "timestamp": "2020-01-01T00:00:00+0000", "size_bytes": 10 }]);

    let (status, reply) = fake
        .admin(reqwest::Method::POST, "/_fake/media", &image_with_size)
        .await;

    assert_eq!(status, 400);
    let message = reply["error"].as_str().unwrap();
    assert!(message.starts_with("media[0].size_bytes"), "{message}");
}
