//! Post title, publication time and body for a media item.
//!
//! The body is one Ghost html card: Ghost's html-to-post conversion drops
//! `<a><img></a>` and `<video>` entirely, but keeps an html card as is. The
//! template is rendered with HTML auto-escaping whatever its name, so a
//! caption can never inject markup. A fingerprint of everything the body
//! is made from is kept in a hidden element inside the card, to tell later
//! passes whether the post is out of date.

use minijinja::{AutoEscape, Environment, Value, context};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::media::{Media, MediaType, PartKind};

/// Ghost rejects titles over 255 characters.
const MAX_TITLE_CHARS: usize = 255;

pub const DEFAULT_TEMPLATE: &str = r#"<div class="tend-instagram">
{%- for item in items %}
{%- if item.kind == "video" %}
<video controls playsinline preload="metadata" src="{{ item.url }}"{% if item.poster %} poster="{{ item.poster }}"{% endif %}></video>
{%- else %}
<img src="{{ item.url }}" alt="{{ alt }}" loading="lazy">
{%- endif %}
{%- endfor %}
{%- if caption %}
<p class="tend-instagram-caption" style="white-space: pre-line">{{ caption }}</p>
{%- endif %}
{%- if permalink %}
<p><a href="{{ permalink }}">View on Instagram</a></p>
{%- endif %}
</div>"#;

/// One image or video of the post, with the URL it is served from.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// `image` or `video`.
    pub kind: &'static str,
    pub url: String,
    /// Thumbnail of a video.
    pub poster: Option<String>,
}

/// Turns the URLs of an item's files, in display order, into post items:
/// a thumbnail becomes the poster of the video before it.
pub(crate) fn items(urls: Vec<(PartKind, String)>) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    for (kind, url) in urls {
        match kind {
            PartKind::Thumbnail => {
                if let Some(video) = items.last_mut().filter(|i| i.kind == "video") {
                    video.poster = Some(url);
                }
            }
            PartKind::Video => items.push(Item {
                kind: "video",
                url,
                poster: None,
            }),
            PartKind::Image => items.push(Item {
                kind: "image",
                url,
                poster: None,
            }),
        }
    }
    items
}

#[derive(Debug, thiserror::Error)]
#[error(
    "post template is invalid: {0}; fix instagram.template or remove it to use the built-in one"
)]
pub struct TemplateError(String);

pub struct Renderer {
    env: Environment<'static>,
    /// Hash of the template text, part of every fingerprint.
    template_hash: String,
}

impl Renderer {
    pub fn new(template: Option<String>) -> Result<Self, TemplateError> {
        let text = template.unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned());
        let template_hash = hex::encode(Sha256::digest(text.as_bytes()));
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.add_template_owned("post.html", text)
            .map_err(|error| TemplateError(error.to_string()))?;
        Ok(Self { env, template_hash })
    }

    /// Fingerprint of what the post body is made from: the media's fields,
    /// its files and the template. URLs are left out, since signed CDN URLs
    /// change on every call.
    pub fn fingerprint(&self, media: &Media) -> String {
        let mut hasher = Sha256::new();
        let files: Vec<String> = media.parts().into_iter().map(|p| p.name).collect();
        let parts = serde_json::json!([
            media.caption_text(),
            media.timestamp,
            media.permalink,
            media.media_type,
            files,
            self.template_hash,
        ]);
        hasher.update(parts.to_string().as_bytes());
        hex::encode(&hasher.finalize()[..12])
    }

    /// Renders the post body: the template's output inside an html card,
    /// with the fingerprint.
    pub fn body(&self, media: &Media, items: &[Item]) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template("post.html")
            .map_err(|error| TemplateError(error.to_string()))?;
        let caption = media.caption_text();
        // URLs are escaped here rather than by the template engine, which
        // would also turn every `/` into `&#x2f;`.
        let items: Vec<Value> = items
            .iter()
            .map(|item| {
                context! {
                    kind => item.kind,
                    url => Value::from_safe_string(attribute(&item.url)),
                    poster => item.poster.as_deref().map(|p| Value::from_safe_string(attribute(p))),
                }
            })
            .collect();
        let permalink = safe_permalink(media.permalink.as_deref())
            .map(|p| Value::from_safe_string(attribute(p)));
        let rendered = template
            .render(context! {
                items => items,
                caption => caption,
                alt => caption.map(|c| title_from(c, 125)).unwrap_or_else(|| fallback_title(media)),
                permalink => permalink,
                media_id => media.id,
                media_type => media.media_type,
                timestamp => media.timestamp,
            })
            .map_err(|error| TemplateError(error.to_string()))?;
        let fingerprint = self.fingerprint(media);
        // Ghost drops html comments when it stores a card but keeps
        // elements and their data attributes, so the fingerprint is an
        // empty element of its own.
        Ok(format!(
            "<!--kg-card-begin: html-->\n{rendered}\n<div hidden data-tend-fingerprint=\"{fingerprint}\"></div>\n<!--kg-card-end: html-->"
        ))
    }
}

/// Escapes a URL for a double-quoted HTML attribute.
fn attribute(url: &str) -> String {
    url.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
}

/// Reads the fingerprint back from a stored post's html.
pub fn stored_fingerprint(html: &str) -> Option<&str> {
    let marker = "data-tend-fingerprint=\"";
    // The last match, because the fingerprint element follows the template
    // output, where an attribute value ending in `data-tend-fingerprint=`
    // (an alt text from the caption, a URL) forms the marker with its
    // closing quote.
    let start = html.rfind(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(&html[start..end])
}

/// Only links to Instagram over https are rendered.
fn safe_permalink(permalink: Option<&str>) -> Option<&str> {
    permalink.filter(|p| {
        p.starts_with("https://www.instagram.com/") || p.starts_with("https://instagram.com/")
    })
}

/// Title for a post: the caption's first line, shortened at a word
/// boundary to Ghost's limit; for captionless media, the type and date.
pub fn title(media: &Media) -> String {
    match media.caption_text() {
        Some(caption) => title_from(caption, MAX_TITLE_CHARS),
        None => fallback_title(media),
    }
}

fn fallback_title(media: &Media) -> String {
    let kind = match media.media_type {
        MediaType::Image => "Photo",
        MediaType::Video => "Video",
        MediaType::CarouselAlbum => "Album",
    };
    // Date and minute, so captionless posts of one day still differ.
    let date = media.timestamp.get(..10).unwrap_or(&media.timestamp);
    match media.timestamp.get(11..16) {
        Some(time) => format!("{kind} from {date} {time}"),
        None => format!("{kind} from {date}"),
    }
}

/// First line of `text`, at most `max` characters, cut at a word boundary
/// with an ellipsis when shortened.
fn title_from(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(text)
        .trim();
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let cut: String = line.chars().take(max - 1).collect();
    let at_word = match cut.rfind(char::is_whitespace) {
        Some(space) if space > cut.len() / 2 => &cut[..space],
        _ => cut.as_str(),
    };
    format!("{}…", at_word.trim_end())
}

/// Converts Instagram's `2016-01-02T03:04:05+0000` to RFC 3339 UTC for
/// Ghost's `published_at`. Returns `None` for an unreadable timestamp.
pub fn published_at(timestamp: &str) -> Option<String> {
    // Checked splits, not indexing, because the text may have a multi-byte
    // character where the offset belongs.
    let (datetime, offset) = timestamp.split_at_checked(timestamp.len().checked_sub(5)?)?;
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let offset_minutes: i64 =
        offset.get(1..3)?.parse::<i64>().ok()? * 60 + offset.get(3..5)?.parse::<i64>().ok()?;
    let local = humantime::parse_rfc3339(&format!("{datetime}Z")).ok()?;
    let shift = std::time::Duration::from_secs((offset_minutes * 60) as u64);
    let utc = if sign > 0 {
        local.checked_sub(shift)?
    } else {
        local.checked_add(shift)?
    };
    Some(humantime::format_rfc3339_seconds(utc).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(caption: Option<&str>) -> Media {
        Media {
            id: "17900000000000001".into(),
            media_type: MediaType::Image,
            caption: caption.map(str::to_owned),
            media_url: Some("https://cdn/a.jpg".into()),
            thumbnail_url: None,
            permalink: Some("https://www.instagram.com/p/AAA/".into()),
            timestamp: "2016-01-02T03:04:05+0000".into(),
            username: None,
            children: None,
        }
    }

    fn image() -> Vec<Item> {
        vec![Item {
            kind: "image",
            url: "https://archive/a.jpg".into(),
            poster: None,
        }]
    }

    #[test]
    fn caption_markup_escaped() {
        let caption =
            r#"Sunset <script>alert(1)</script> & "friends" <b>ok</b> #beach @someone 🌅"#;
        let body = Renderer::new(None)
            .unwrap()
            .body(&media(Some(caption)), &image())
            .unwrap();
        assert!(!body.contains("<script>"), "{body}");
        assert!(!body.contains("<b>"), "{body}");
        assert!(body.contains("&lt;script&gt;"), "{body}");
        assert!(body.contains("🌅"));
        assert!(
            body.contains(r#"href="https://www.instagram.com/p/AAA/""#),
            "{body}"
        );
        assert!(body.starts_with("<!--kg-card-begin: html-->"));
    }

    #[test]
    fn long_caption_title_cut_at_word() {
        let caption = "word ".repeat(460);
        let title = title(&media(Some(&caption)));
        assert!(title.chars().count() <= 255);
        assert!(title.ends_with("word…"), "{title}");
    }

    #[test]
    fn captionless_title_names_date() {
        assert_eq!(title(&media(None)), "Photo from 2016-01-02 03:04");
        assert_eq!(title(&media(Some("  \n"))), "Photo from 2016-01-02 03:04");
    }

    #[test]
    fn published_at_converted_to_utc() {
        assert_eq!(
            published_at("2016-01-02T03:04:05+0000").as_deref(),
            Some("2016-01-02T03:04:05Z")
        );
        assert_eq!(
            published_at("2016-01-02T03:04:05+0200").as_deref(),
            Some("2016-01-02T01:04:05Z")
        );
        assert_eq!(published_at("yesterday"), None);
    }

    #[test]
    fn published_at_rejects_multibyte_offset() {
        for timestamp in [
            "é0000",
            "2016-01-02T03:04:05+00é",
            "2016-01-02T03:04:05+0é0",
        ] {
            assert_eq!(published_at(timestamp), None, "{timestamp}");
        }
    }

    #[test]
    fn fingerprint_round_trips() {
        let renderer = Renderer::new(None).unwrap();
        let body = renderer.body(&media(Some("a")), &image()).unwrap();
        let stored = stored_fingerprint(&body).unwrap();
        assert_eq!(stored, renderer.fingerprint(&media(Some("a"))));
        assert_ne!(stored, renderer.fingerprint(&media(Some("b"))));
    }

    #[test]
    fn fingerprint_read_after_lookalike_caption() {
        let renderer = Renderer::new(None).unwrap();
        let lookalike = media(Some("data-tend-fingerprint="));
        let body = renderer.body(&lookalike, &image()).unwrap();
        assert_eq!(
            stored_fingerprint(&body),
            Some(renderer.fingerprint(&lookalike).as_str()),
            "{body}"
        );
    }

    #[test]
    fn hostile_permalink_dropped() {
        let mut hostile = media(Some("x"));
        hostile.permalink = Some("javascript:alert(1)".into());
        let body = Renderer::new(None)
            .unwrap()
            .body(&hostile, &image())
            .unwrap();
        assert!(!body.contains("javascript:"), "{body}");
    }
}
