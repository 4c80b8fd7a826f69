//! Seed documents: the account and its media, from `--seed FILE` or, for
//! the media alone, `POST /_fake/media`.
//!
//! ```json
//! {"account": {"id": "17841400000000000", "username": "tend.fake",
//!              "account_type": "BUSINESS"},
//!  "media": [{"id": "17900000000000001", "media_type": "CAROUSEL_ALBUM",
//!             "caption": "Two photos", "timestamp": "2016-01-02T03:04:05+0000",
//!             "permalink": "https://www.instagram.com/p/AAA/",
//!             "children": [{"id": "17900000000000002", "media_type": "IMAGE"},
//!                          {"id": "17900000000000003", "media_type": "VIDEO",
//!                           "size_bytes": 1048576}]}]}
//! ```
//!
//! `caption`, `permalink`, `size_bytes` and `children` are optional. A post
//! without `caption` has none, `permalink` defaults to an instagram.com URL
//! made from the id, and `size_bytes`, allowed on videos only, defaults to
//! 256 KiB. The fake sorts posts by timestamp, newest first, whatever their
//! order in the document.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use crate::content::MIN_VIDEO_BYTES;
use crate::media::{Child, DEFAULT_VIDEO_BYTES, Media, MediaType};
use crate::png::fnv1a;

/// Largest number of posts the fake holds, which keeps a typo in a
/// generate request from exhausting memory.
pub const MAX_POSTS: usize = 1_000_000;

/// Maximum id length. Meta's ids have 17 or 18 digits.
const MAX_ID_LENGTH: usize = 64;

/// Ids that would collide with a path of the fake.
const RESERVED_IDS: [&str; 4] = ["me", "cdn", "refresh_access_token", "_fake"];

/// A whole seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    #[serde(default)]
    pub account: AccountSeed,
    #[serde(default)]
    pub media: Value,
}

/// The account that `/me` returns. Absent keys keep their defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSeed {
    pub id: Option<String>,
    pub username: Option<String>,
    pub account_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaSeed {
    id: String,
    media_type: MediaType,
    caption: Option<String>,
    timestamp: String,
    permalink: Option<String>,
    size_bytes: Option<u64>,
    #[serde(default)]
    children: Vec<ChildSeed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChildSeed {
    id: String,
    media_type: MediaType,
    size_bytes: Option<u64>,
}

/// Parses a JSON array of posts. Ids must be unique among themselves and
/// must not be in `reserved`. An error names the invalid entry by its path,
/// such as `media[2].children[0].id`.
pub fn parse_media(value: &Value, reserved: &HashSet<String>) -> Result<Vec<Media>, String> {
    let entries = match value {
        Value::Array(entries) => entries.as_slice(),
        Value::Null => &[],
        other => return Err(format!("media: expected a JSON array, found {other}")),
    };
    if entries.len() > MAX_POSTS {
        return Err(format!(
            "media: {} posts, more than the limit of {MAX_POSTS}",
            entries.len()
        ));
    }
    let mut seen = reserved.clone();
    let mut posts = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let path = format!("media[{index}]");
        let seed: MediaSeed =
            serde_json::from_value(entry.clone()).map_err(|error| format!("{path}: {error}"))?;
        posts.push(build_post(seed, &path, &mut seen)?);
    }
    Ok(posts)
}

fn build_post(seed: MediaSeed, path: &str, seen: &mut HashSet<String>) -> Result<Media, String> {
    claim_id(&seed.id, &format!("{path}.id"), seen)?;
    let timestamp = crate::time::parse(&seed.timestamp)
        .map_err(|error| format!("{path}.timestamp: {error}"))?;
    let size_bytes = video_size(seed.media_type, seed.size_bytes, path)?;

    let is_carousel = seed.media_type == MediaType::CarouselAlbum;
    if is_carousel && seed.children.is_empty() {
        return Err(format!(
            "{path}.children: a CAROUSEL_ALBUM needs at least one child"
        ));
    }
    if !is_carousel && !seed.children.is_empty() {
        return Err(format!(
            "{path}.children: only a CAROUSEL_ALBUM has children, this post is {}",
            seed.media_type.as_str()
        ));
    }
    let mut children = Vec::with_capacity(seed.children.len());
    for (index, child) in seed.children.into_iter().enumerate() {
        let child_path = format!("{path}.children[{index}]");
        claim_id(&child.id, &format!("{child_path}.id"), seen)?;
        if child.media_type == MediaType::CarouselAlbum {
            return Err(format!(
                "{child_path}.media_type: a carousel child is IMAGE or VIDEO"
            ));
        }
        children.push(Child {
            size_bytes: video_size(child.media_type, child.size_bytes, &child_path)?,
            id: child.id,
            media_type: child.media_type,
        });
    }

    Ok(Media {
        permalink: seed
            .permalink
            .unwrap_or_else(|| default_permalink(&seed.id)),
        id: seed.id,
        media_type: seed.media_type,
        caption: seed.caption,
        timestamp,
        size_bytes,
        children,
    })
}

/// Returns the video size of an entry, rejecting `size_bytes` on other
/// media types so that a misplaced size cannot go unnoticed.
fn video_size(media_type: MediaType, size_bytes: Option<u64>, path: &str) -> Result<u64, String> {
    match (media_type, size_bytes) {
        (MediaType::Video, None) => Ok(DEFAULT_VIDEO_BYTES),
        (MediaType::Video, Some(size)) if size >= MIN_VIDEO_BYTES => Ok(size),
        (MediaType::Video, Some(size)) => Err(format!(
            "{path}.size_bytes: {size} is below the minimum video size of {MIN_VIDEO_BYTES} bytes"
        )),
        (_, None) => Ok(0),
        (other, Some(_)) => Err(format!(
            "{path}.size_bytes: only VIDEO media have a size, this one is {}",
            other.as_str()
        )),
    }
}

/// Validates `id` and records it, rejecting one already used.
fn claim_id(id: &str, path: &str, seen: &mut HashSet<String>) -> Result<(), String> {
    validate_id(id).map_err(|error| format!("{path}: {error}"))?;
    if !seen.insert(id.to_owned()) {
        return Err(format!(
            "{path}: id {id:?} is already used by another post, child or the account"
        ));
    }
    Ok(())
}

/// Checks that `id` can stand in a URL path without encoding and does not
/// collide with a path of the fake.
pub fn validate_id(id: &str) -> Result<(), String> {
    let well_formed = !id.is_empty()
        && id.len() <= MAX_ID_LENGTH
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    if !well_formed {
        return Err(format!(
            "invalid id {id:?}: expected 1 to {MAX_ID_LENGTH} ASCII letters, digits or underscores"
        ));
    }
    if RESERVED_IDS.contains(&id) {
        return Err(format!(
            "invalid id {id:?}: the fake reserves it for a path"
        ));
    }
    Ok(())
}

/// Returns `https://www.instagram.com/p/SHORTCODE/` with an 11-character
/// shortcode derived from `id`. The fake never requests this URL.
pub fn default_permalink(id: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut hash = fnv1a(id.as_bytes());
    let shortcode: String = (0..11)
        .map(|_| {
            let letter = ALPHABET[(hash % 64) as usize];
            hash = hash / 64 + 0x9E37_79B9;
            char::from(letter)
        })
        .collect();
    format!("https://www.instagram.com/p/{shortcode}/")
}
