//! Entry points of the fuzz targets in `fuzz/`, one function per target,
//! each taking the raw input. The tests at the end replay the committed
//! corpus in `fuzz/corpus/` through the same functions on the stable
//! toolchain, so `cargo test` catches regressions without a fuzzer.
//!
//! A function panics only when the code under test panics or breaks one of
//! the invariants asserted here. Rejecting the input is a normal outcome.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::config::Config;
use crate::instagram::api::{self, PageBody, Refreshed};
use crate::instagram::ghost::{self, Post};
use crate::instagram::render::{self, Renderer};
use crate::instagram::{Media, slug};
use crate::scheduler::request::{MAX_BODY_BYTES, TaskRequest};

/// Parses the input as an SQS message body. A request that parses must
/// survive a round trip through `to_body`, because `tend submit` sends
/// `to_body` output that the scheduler parses again.
pub fn task_request(data: &[u8]) {
    let body = String::from_utf8_lossy(data);
    let Ok(request) = TaskRequest::parse(&body) else {
        return;
    };
    let written = request.to_body();
    // `to_body` can be longer than its input (`1e2` becomes `100.0`), so
    // near the size limit a round trip may fail for that reason alone.
    if written.len() > MAX_BODY_BYTES {
        return;
    }
    let reparsed = TaskRequest::parse(&written)
        .unwrap_or_else(|error| panic!("to_body output {written:?} is rejected: {error}"));
    assert_eq!(reparsed, request, "round trip through {written:?}");
}

/// Decodes the input as each Graph API response body tend reads, and
/// renders the post of every media item that decodes. The same input also
/// fills the fields of a media object directly (see [`media_from_fields`]),
/// so the renderer gets text that random JSON rarely decodes to.
pub fn instagram_media(data: &[u8]) {
    render_post(&media_from_fields(data));
    if let Ok(body) = api::decode::<PageBody>(StatusCode::OK, data) {
        let page = api::Page::from(body);
        for media in &page.items {
            render_post(media);
        }
    }
    if let Ok(media) = api::decode::<Media>(StatusCode::OK, data) {
        render_post(&media);
    }
    let _ = api::decode::<Refreshed>(StatusCode::OK, data);
    // A failure status makes `decode` read the body as a Graph error.
    let error = api::decode::<Media>(StatusCode::BAD_REQUEST, data).unwrap_err();
    let _ = error.to_string();
}

/// Builds a media object from the input: the first byte picks the media
/// type, and NUL bytes separate the id, caption, timestamp, permalink,
/// media URL, thumbnail URL and the media URLs of carousel children.
fn media_from_fields(data: &[u8]) -> Media {
    let (kind, rest) = data.split_first().unwrap_or((&0, &[]));
    let media_type = match kind % 3 {
        0 => "IMAGE",
        1 => "VIDEO",
        _ => "CAROUSEL_ALBUM",
    };

    let text = String::from_utf8_lossy(rest);
    let mut fields = text.split('\0');
    let mut field = || fields.next();
    let id = field().unwrap_or_default();
    let caption = field();
    let timestamp = field().unwrap_or_default();
    let permalink = field();
    let media_url = field();
    let thumbnail_url = field();

    let children: Vec<Value> = fields
        .enumerate()
        .map(|(index, url)| {
            let child_type = if index % 2 == 0 { "IMAGE" } else { "VIDEO" };
            json!({
                "id": format!("{id}-{index}"),
                "media_type": child_type,
                "media_url": url,
                "thumbnail_url": url,
            })
        })
        .collect();

    let body = json!({
        "id": id,
        "media_type": media_type,
        "caption": caption,
        "timestamp": timestamp,
        "permalink": permalink,
        "media_url": media_url,
        "thumbnail_url": thumbnail_url,
        "children": {"data": children},
    });
    api::decode(StatusCode::OK, body.to_string().as_bytes())
        .unwrap_or_else(|error| panic!("media object {body} does not decode: {error}"))
}

/// Renders the post of `media` as the sync does, with the media URLs in
/// place of the archive URLs so that they are hostile input too.
fn render_post(media: &Media) {
    let urls = media
        .parts()
        .into_iter()
        .map(|part| (part.kind, part.url))
        .collect();
    let items = render::items(urls);
    let _ = render::title(media);
    let _ = render::published_at(&media.timestamp);
    let _ = slug(&media.id);

    let renderer = default_renderer();
    let html = renderer
        .body(media, &items)
        .unwrap_or_else(|error| panic!("the built-in template failed on {media:?}: {error}"));
    let fingerprint = renderer.fingerprint(media);
    assert_eq!(
        render::stored_fingerprint(&html),
        Some(fingerprint.as_str()),
        "fingerprint not read back from {html}"
    );
    assert_template_markup_only(&html);
}

fn default_renderer() -> &'static Renderer {
    static RENDERER: OnceLock<Renderer> = OnceLock::new();
    RENDERER.get_or_init(|| Renderer::new(None).expect("the built-in template compiles"))
}

/// Elements the html card and the built-in template write.
const TEMPLATE_ELEMENTS: &[&str] = &["div", "video", "img", "p", "a"];
/// Attributes the built-in template and the fingerprint element write.
const TEMPLATE_ATTRIBUTES: &[&str] = &[
    "class",
    "controls",
    "playsinline",
    "preload",
    "src",
    "poster",
    "alt",
    "loading",
    "style",
    "href",
    "hidden",
    "data-tend-fingerprint",
];

/// Asserts that every tag in `html` is one the built-in template or the
/// html card writes, with only the template's attributes. Markup or an
/// attribute that breaks out of a quoted value in the media's caption or
/// URLs would show up as another element or attribute.
fn assert_template_markup_only(html: &str) {
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = rest[start..]
            .find('>')
            .map(|end| start + end)
            .unwrap_or_else(|| panic!("unclosed tag at {:?} in {html}", &rest[start..]));
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag == "!--kg-card-begin: html--" || tag == "!--kg-card-end: html--" {
            continue;
        }
        let tag = tag.strip_prefix('/').unwrap_or(tag);
        let (name, mut attributes) = tag.split_once(' ').unwrap_or((tag, ""));
        assert!(
            TEMPLATE_ELEMENTS.contains(&name),
            "element {name:?} is not the template's, in {html}"
        );
        while !attributes.is_empty() {
            let end = attributes.find([' ', '=']).unwrap_or(attributes.len());
            let attribute = &attributes[..end];
            assert!(
                TEMPLATE_ATTRIBUTES.contains(&attribute),
                "attribute {attribute:?} is not the template's, in {html}"
            );
            attributes = &attributes[end..];
            if let Some(value) = attributes.strip_prefix("=\"") {
                let close = value
                    .find('"')
                    .unwrap_or_else(|| panic!("unclosed attribute value in {html}"));
                attributes = &value[close + 1..];
            }
            attributes = attributes.trim_start_matches(' ');
        }
    }
}

/// Parses the input as each Ghost Admin API response body tend reads.
pub fn ghost_response(data: &[u8]) {
    // Ghost returns 422 for an invalid post and 404 for an unknown slug.
    for status in [StatusCode::UNPROCESSABLE_ENTITY, StatusCode::NOT_FOUND] {
        let error = ghost::parse_response("fuzz", status, data).unwrap_err();
        let _ = error.to_string();
    }
    let Ok(body) = ghost::parse_response("fuzz", StatusCode::OK, data) else {
        return;
    };
    if let Ok(post) = ghost::first_post(body.clone(), "read post") {
        read_post(&post);
    }
    if let Ok((posts, _next)) = ghost::posts_page(&body) {
        posts.iter().for_each(read_post);
    }
    for field in ["images", "media"] {
        let _ = ghost::uploaded_url(&body, field);
    }
}

/// Reads a stored post as the loop does to decide whether it is current.
fn read_post(post: &Post) {
    if let Some(html) = &post.html {
        let _ = render::stored_fingerprint(html);
    }
}

/// Separates the config file text from the environment in `config` input.
const ENV_SEPARATOR: u8 = 0;

/// Loads a configuration from the input: the bytes before the first NUL
/// are the config file, and each line after it is one `NAME=VALUE`
/// environment variable. `TEND_` is put in front of names that lack it,
/// since the loader ignores other variables.
pub fn config(data: &[u8]) {
    let (file, env_text) = match data.iter().position(|&byte| byte == ENV_SEPARATOR) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let file = String::from_utf8_lossy(file);
    let mut env = BTreeMap::new();
    for line in String::from_utf8_lossy(env_text).lines() {
        let (name, value) = line.split_once('=').unwrap_or((line, ""));
        let name = if name.starts_with("TEND_") {
            name.to_owned()
        } else {
            format!("TEND_{name}")
        };
        env.insert(name, value.to_owned());
    }
    match Config::parse(&file, "fuzz.toml", &env) {
        Ok(config) => {
            serde_json::to_string(&config).expect("a loaded config serialises");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Calls `target` with every file of the committed corpus of `name` and
    /// returns how many there were.
    fn replay(name: &str, target: fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(name);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "corpus file {} panics", path.display());
            count += 1;
        }
        count
    }

    #[test]
    fn task_request_corpus_replays() {
        assert!(replay("task_request", super::task_request) >= 5);
    }

    #[test]
    fn instagram_media_corpus_replays() {
        assert!(replay("instagram_media", super::instagram_media) >= 5);
    }

    #[test]
    fn ghost_response_corpus_replays() {
        assert!(replay("ghost_response", super::ghost_response) >= 5);
    }

    #[test]
    fn config_corpus_replays() {
        assert!(replay("config", super::config) >= 5);
    }
}
