//! Media items as the Instagram API with Instagram Login returns them.

use serde::{Deserialize, Serialize};

/// Fields requested for every media item: children for carousels and the
/// thumbnail for videos come in the same call.
pub const MEDIA_FIELDS: &str = "id,caption,media_type,media_url,permalink,thumbnail_url,timestamp,username,\
children{id,media_type,media_url,thumbnail_url,timestamp}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MediaType {
    Image,
    Video,
    CarouselAlbum,
}

/// One media item. `caption` is absent for captionless media; a carousel
/// may have no top-level `media_url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    pub id: String,
    pub media_type: MediaType,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub media_url: Option<String>,
    #[serde(default)]
    pub thumbnail_url: Option<String>,
    #[serde(default)]
    pub permalink: Option<String>,
    /// ISO 8601 as Instagram writes it, such as `2016-01-02T03:04:05+0000`.
    pub timestamp: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub children: Option<Children>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Children {
    pub data: Vec<Child>,
}

/// One carousel item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Child {
    pub id: String,
    pub media_type: MediaType,
    #[serde(default)]
    pub media_url: Option<String>,
    #[serde(default)]
    pub thumbnail_url: Option<String>,
}

/// One file to archive: a photo, a video or a video's thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Media id the URL belongs to (the item or a carousel child), used to
    /// fetch a fresh URL when a signed one has expired.
    pub owner_id: String,
    /// File name inside the item's archive folder, such as `{id}.jpg`,
    /// `{id}.mp4` or `{id}.thumbnail.jpg`; the extension follows the URL.
    pub name: String,
    pub url: String,
    pub kind: PartKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartKind {
    Image,
    Video,
    Thumbnail,
}

impl Media {
    /// Files to archive, in display order. A missing URL is skipped:
    /// Instagram omits `media_url` for media flagged for copyright.
    pub fn parts(&self) -> Vec<Part> {
        let mut parts = Vec::new();
        match &self.children {
            Some(children) if self.media_type == MediaType::CarouselAlbum => {
                for child in &children.data {
                    push_parts(
                        &mut parts,
                        &child.id,
                        child.media_type,
                        &child.media_url,
                        &child.thumbnail_url,
                    );
                }
            }
            _ => push_parts(
                &mut parts,
                &self.id,
                self.media_type,
                &self.media_url,
                &self.thumbnail_url,
            ),
        }
        parts
    }

    /// Caption with surrounding whitespace removed; `None` when empty.
    pub fn caption_text(&self) -> Option<&str> {
        self.caption
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
    }
}

/// File extension of a CDN URL's path when it is a known media type, so
/// the archived name matches the content; `default` otherwise.
fn extension(url: &str, default: &'static str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let ext = path
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    ["jpg", "jpeg", "png", "webp", "heic", "gif", "mp4", "mov"]
        .into_iter()
        .find(|known| *known == ext)
        .unwrap_or(default)
}

fn push_parts(
    parts: &mut Vec<Part>,
    id: &str,
    kind: MediaType,
    url: &Option<String>,
    thumbnail: &Option<String>,
) {
    let is_video = kind == MediaType::Video;
    if let Some(url) = url {
        parts.push(Part {
            owner_id: id.to_owned(),
            name: format!(
                "{id}.{}",
                extension(url, if is_video { "mp4" } else { "jpg" })
            ),
            url: url.clone(),
            kind: if is_video {
                PartKind::Video
            } else {
                PartKind::Image
            },
        });
    }
    if let (true, Some(url)) = (is_video, thumbnail) {
        parts.push(Part {
            owner_id: id.to_owned(),
            name: format!("{id}.thumbnail.{}", extension(url, "jpg")),
            url: url.clone(),
            kind: PartKind::Thumbnail,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carousel_parts_in_order() {
        let json = r#"{"id":"17900000000000002","media_type":"CAROUSEL_ALBUM","caption":"three",
            "timestamp":"2016-01-02T03:04:05+0000","children":{"data":[
            {"id":"c1","media_type":"IMAGE","media_url":"https://cdn/1.jpg"},
            {"id":"c2","media_type":"VIDEO","media_url":"https://cdn/2.mp4","thumbnail_url":"https://cdn/2.jpg"},
            {"id":"c3","media_type":"IMAGE","media_url":"https://cdn/3.jpg"}]}}"#;
        let media: Media = serde_json::from_str(json).unwrap();
        let names: Vec<String> = media.parts().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["c1.jpg", "c2.mp4", "c2.thumbnail.jpg", "c3.jpg"]);
    }

    #[test]
    fn extension_follows_url() {
        assert_eq!(extension("https://cdn/x/1.png?oe=1&oh=2", "jpg"), "png");
        assert_eq!(extension("https://cdn/x/1?oe=1", "jpg"), "jpg");
        assert_eq!(extension("https://cdn/x/1.exe", "mp4"), "mp4");
    }

    #[test]
    fn captionless_media_parses() {
        let json = r#"{"id":"1","media_type":"IMAGE","media_url":"https://cdn/a.jpg",
            "permalink":"https://www.instagram.com/p/AAA/","timestamp":"2016-01-02T03:04:05+0000"}"#;
        let media: Media = serde_json::from_str(json).unwrap();
        assert_eq!(media.caption_text(), None);
        assert_eq!(media.parts().len(), 1);
    }
}
