//! `POST /_fake/generate`: adds many posts at once for benchmarks.
//!
//! Post `i` (from 1) gets id `{prefix}{i:014}`, with prefix `180` by
//! default, and timestamp `start + (i - 1) * interval_seconds`, so the last
//! post is the newest. The request accepts `count` (required), `prefix`,
//! `start` (default 2020-01-01T00:00:00+0000), `interval_seconds` (default
//! 3600), `with_carousels`, `with_videos` and `video_size_bytes` (default
//! 256 KiB).
//! With `with_carousels`, every 5th post is a carousel of three images,
//! whose second child is a video when `with_videos` is also set. With
//! `with_videos`, every 7th other post is a video of `video_size_bytes`.
//! Every 10th post has no caption and every 3rd caption contains an emoji and
//! a line break.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::content::MIN_VIDEO_BYTES;
use crate::fake::Fake;
use crate::media::{Child, DEFAULT_VIDEO_BYTES, Media, MediaType};
use crate::seed::{MAX_POSTS, default_permalink, validate_id};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    count: u32,
    #[serde(default = "default_prefix")]
    prefix: String,
    #[serde(default = "default_start")]
    start: String,
    #[serde(default = "default_interval")]
    interval_seconds: u32,
    #[serde(default)]
    with_carousels: bool,
    #[serde(default)]
    with_videos: bool,
    #[serde(default = "default_video_size")]
    video_size_bytes: u64,
}

fn default_prefix() -> String {
    "180".to_owned()
}

fn default_start() -> String {
    "2020-01-01T00:00:00+0000".to_owned()
}

fn default_interval() -> u32 {
    3600
}

fn default_video_size() -> u64 {
    DEFAULT_VIDEO_BYTES
}

/// Adds the generated posts to the existing ones. Fails without adding
/// any if an id is taken or the total would pass `MAX_POSTS`.
pub fn generate(fake: &mut Fake, request: &GenerateRequest) -> Result<Value, String> {
    let count = request.count as usize;
    let total = fake.library.posts().len() + count;
    if total > MAX_POSTS {
        return Err(format!(
            "count: {total} posts in total would pass the limit of {MAX_POSTS}"
        ));
    }
    if request.video_size_bytes < MIN_VIDEO_BYTES {
        return Err(format!(
            "video_size_bytes: {} is below the minimum video size of {MIN_VIDEO_BYTES} bytes",
            request.video_size_bytes
        ));
    }
    let start = crate::time::parse(&request.start).map_err(|error| format!("start: {error}"))?;
    // A carousel child's id is the longest the prefix produces.
    let longest_id = format!("{}{:014}_0", request.prefix, 0);
    validate_id(&longest_id).map_err(|error| format!("prefix: {error}"))?;

    let mut posts = Vec::with_capacity(count);
    for index in 1..=request.count {
        let post = generated_post(request, index, start);
        for id in std::iter::once(&post.id).chain(post.children.iter().map(|child| &child.id)) {
            if fake.library.contains(id) || *id == fake.account.id {
                return Err(format!(
                    "id {id:?} is already taken, so pass another prefix"
                ));
            }
        }
        posts.push(post);
    }

    let (first_id, last_id) = (
        posts.first().map(|post| post.id.clone()),
        posts.last().map(|post| post.id.clone()),
    );
    fake.library.extend(posts);
    tracing::info!(count, total, "generated posts");
    Ok(json!({ "created": count, "total": total, "first_id": first_id, "last_id": last_id }))
}

fn generated_post(request: &GenerateRequest, index: u32, start: i64) -> Media {
    let id = format!("{}{index:014}", request.prefix);
    let is_carousel = request.with_carousels && index.is_multiple_of(5);
    let is_video = !is_carousel && request.with_videos && index.is_multiple_of(7);
    let media_type = match (is_carousel, is_video) {
        (true, _) => MediaType::CarouselAlbum,
        (false, true) => MediaType::Video,
        (false, false) => MediaType::Image,
    };
    let children = if is_carousel {
        (1..=3)
            .map(|position| {
                let is_video_child = request.with_videos && position == 2;
                Child {
                    id: format!("{id}_{position}"),
                    media_type: if is_video_child {
                        MediaType::Video
                    } else {
                        MediaType::Image
                    },
                    size_bytes: if is_video_child {
                        request.video_size_bytes
                    } else {
                        0
                    },
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let caption = match index {
        index if index.is_multiple_of(10) => None,
        index if index.is_multiple_of(3) => {
            Some(format!("Generated post {index} 🌿\nwith a #hashtag"))
        }
        index => Some(format!("Generated post {index}")),
    };
    Media {
        permalink: default_permalink(&id),
        timestamp: start + i64::from(index - 1) * i64::from(request.interval_seconds),
        size_bytes: if is_video {
            request.video_size_bytes
        } else {
            0
        },
        id,
        media_type,
        caption,
        children,
    }
}
