//! The CDN: signed URLs `/cdn/{id}.{png|mp4}?oe=EXPIRY&oh=SIGNATURE` and the
//! files behind them. `oe` is the expiry in hexadecimal Unix seconds and
//! `oh` a keyed SipHash of path, expiry and signing generation. The key is
//! random per process, and `POST /_fake/cdn/expire` starts a new
//! generation, which expires every URL issued before it.

use std::hash::{BuildHasher, RandomState};

use hyper::body::Bytes;
use hyper::{Method, Response};

use crate::content::{Content, ContentBody, VideoFile};
use crate::fake::Fake;
use crate::media::MediaType;
use crate::query::Query;
use crate::server::{ResponseBody, text_response};

/// Kind of file a CDN URL serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FileKind {
    /// The PNG of an image, or the thumbnail of a video.
    Image,
    /// The MP4 of a video.
    Video,
}

impl FileKind {
    fn extension(self) -> &'static str {
        match self {
            Self::Image => "png",
            Self::Video => "mp4",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Image => "image/png",
            Self::Video => "video/mp4",
        }
    }
}

/// Reason the CDN rejects a URL. The texts are the bodies Instagram's CDN
/// returns for the same cases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Denial {
    Expired,
    BadHash,
}

impl Denial {
    fn message(self) -> &'static str {
        match self {
            Self::Expired => "URL signature expired",
            Self::BadHash => "Bad URL hash",
        }
    }
}

/// Signs and verifies CDN URLs.
#[derive(Debug)]
pub struct Signer {
    keys: RandomState,
    generation: u64,
}

impl Signer {
    pub fn new() -> Self {
        Self {
            keys: RandomState::new(),
            generation: 0,
        }
    }

    /// Returns the full signed URL of the file of `id`, valid until
    /// `expiry` in Unix seconds.
    pub fn signed_url(&self, base_url: &str, id: &str, kind: FileKind, expiry: i64) -> String {
        let path = format!("/cdn/{id}.{}", kind.extension());
        let signature = self.signature(&path, expiry, self.generation);
        format!("{base_url}{path}?oe={expiry:X}&oh={signature}")
    }

    /// Expires every URL issued so far.
    pub fn expire_all(&mut self) {
        self.generation += 1;
    }

    /// Checks the `oe` and `oh` parameters of a request for `path` at time
    /// `now`. A URL of an earlier generation reads as expired.
    pub fn verify(&self, path: &str, query: &Query, now: i64) -> Result<(), Denial> {
        let expiry = query
            .get("oe")
            .and_then(|hex| i64::from_str_radix(hex, 16).ok());
        let (Some(expiry), Some(signature)) = (expiry, query.get("oh")) else {
            return Err(Denial::BadHash);
        };
        let generation = (0..=self.generation)
            .rev()
            .find(|&generation| self.signature(path, expiry, generation) == signature)
            .ok_or(Denial::BadHash)?;
        if generation < self.generation || expiry <= now {
            return Err(Denial::Expired);
        }
        Ok(())
    }

    fn signature(&self, path: &str, expiry: i64, generation: u64) -> String {
        let high = self.keys.hash_one((path, expiry, generation, 1u8));
        let low = self.keys.hash_one((path, expiry, generation, 2u8));
        format!("{high:016x}{low:016x}")
    }
}

/// Serves one CDN request. Every request counts as a `cdn` call.
pub fn respond(
    fake: &mut Fake,
    method: &Method,
    path: &str,
    query: &Query,
    range: Option<&str>,
) -> Response<ResponseBody> {
    *fake.calls.entry("cdn".to_owned()).or_default() += 1;
    if method != Method::GET && method != Method::HEAD {
        return text_response(405, "Method not allowed");
    }
    let Some((id, kind)) = parse_file_name(path) else {
        return text_response(404, "Not found");
    };
    if let Err(denial) = fake.signer.verify(path, query, crate::time::now()) {
        tracing::debug!(%path, ?denial, "rejected CDN URL");
        return text_response(403, denial.message());
    }
    let Some(content) = file_content(fake, id, kind) else {
        return text_response(404, "Not found");
    };
    serve_content(content, kind, range)
}

/// Splits `/cdn/{id}.{png|mp4}` into id and kind.
fn parse_file_name(path: &str) -> Option<(&str, FileKind)> {
    let name = path.strip_prefix("/cdn/")?;
    let (id, extension) = name.rsplit_once('.')?;
    let kind = match extension {
        "png" => FileKind::Image,
        "mp4" => FileKind::Video,
        _ => return None,
    };
    Some((id, kind))
}

/// Returns the file of a post or child, or None where it has none: a
/// carousel has no file of its own and an image has no video.
fn file_content(fake: &Fake, id: &str, kind: FileKind) -> Option<Content> {
    let node = fake.library.node(id)?;
    match (node.media_type, kind) {
        (MediaType::CarouselAlbum, _) | (MediaType::Image, FileKind::Video) => None,
        (_, FileKind::Image) => Some(Content::Whole(Bytes::from(crate::png::media_image(id)))),
        (MediaType::Video, FileKind::Video) => {
            Some(Content::Video(VideoFile::new(id, node.size_bytes)))
        }
    }
}

/// Bytes that a `Range` header requests.
#[derive(Debug, PartialEq)]
enum ByteRange {
    Whole,
    /// Start and exclusive end.
    Part(u64, u64),
    Unsatisfiable,
}

/// Parses a single-range `Range` header (RFC 9110, section 14.2). Several
/// ranges or an invalid header read as the whole file, which the RFC
/// allows a server to send instead.
fn parse_range(header: Option<&str>, length: u64) -> ByteRange {
    let Some(spec) = header.and_then(|value| value.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    let Some((first, last)) = spec.split_once('-').filter(|_| !spec.contains(',')) else {
        return ByteRange::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |text: &str| text.parse::<u64>().ok();
    match (number(first), number(last)) {
        (Some(start), _) if start >= length => ByteRange::Unsatisfiable,
        (Some(start), Some(end)) if end >= start => ByteRange::Part(start, (end + 1).min(length)),
        (Some(start), None) if last.is_empty() => ByteRange::Part(start, length),
        (None, Some(0)) if first.is_empty() => ByteRange::Unsatisfiable,
        (None, Some(suffix)) if first.is_empty() => {
            ByteRange::Part(length.saturating_sub(suffix), length)
        }
        _ => ByteRange::Whole,
    }
}

fn serve_content(content: Content, kind: FileKind, range: Option<&str>) -> Response<ResponseBody> {
    let length = content.len();
    let (status, start, end) = match parse_range(range, length) {
        ByteRange::Whole => (200, 0, length),
        ByteRange::Part(start, end) => (206, start, end),
        ByteRange::Unsatisfiable => {
            let mut response = text_response(416, "Range not satisfiable");
            let value = format!("bytes */{length}");
            let headers = response.headers_mut();
            headers.insert("content-range", value.parse().expect("ASCII header"));
            return response;
        }
    };

    let body = ContentBody::new(content, start, end);
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", kind.content_type())
        .header("content-length", end - start)
        .header("accept-ranges", "bytes");
    if status == 206 {
        let value = format!("bytes {start}-{}/{length}", end - 1);
        builder = builder.header("content-range", value);
    }
    let body = http_body_util::BodyExt::boxed(body);
    builder.body(body).expect("status and headers are valid")
}
