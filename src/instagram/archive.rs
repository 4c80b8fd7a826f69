//! The S3 archive: media files streamed from the CDN with bounded memory
//! and a SHA-256 each, then a JSON sidecar per item written last as the
//! completion marker.
//!
//! Keys (prefix `P`): `P{media_id}/{file}` for each file and
//! `P{media_id}.json` for the sidecar. Every write goes to a key derived
//! from the media id, so repeating it after a crash overwrites rather than
//! duplicates. No ACL is ever sent: buckets created since 2023 reject them.

use std::collections::HashSet;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::media::{Media, Part, PartKind};

/// Size of each multipart part and of the one buffer a transfer holds; S3
/// requires at least 5 MiB for every part but the last.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(
        "media URL host {host:?} is not in instagram.cdn_hosts, so tend did not download it; add the host to instagram.cdn_hosts if it serves Instagram media"
    )]
    HostNotAllowed { host: String },
    #[error("media URL is not a valid http(s) URL")]
    InvalidUrl,
    /// The signed CDN URL has expired: fetch the media object again.
    #[error("CDN URL for {0} has expired")]
    Expired(String),
    #[error("downloading {name} failed: {message}")]
    Download { name: String, message: String },
    #[error("S3 {operation} of {key} failed: {message}")]
    S3 {
        operation: &'static str,
        key: String,
        message: String,
    },
}

fn s3_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    operation: &'static str,
    key: &str,
) -> impl FnOnce(aws_sdk_s3::error::SdkError<E, R>) -> ArchiveError {
    move |error| ArchiveError::S3 {
        operation,
        key: key.to_owned(),
        message: DisplayErrorContext(&error).to_string(),
    }
}

/// One archived file, as the sidecar lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedFile {
    pub name: String,
    pub key: String,
    pub kind: PartKind,
    pub content_type: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The per-item JSON sidecar, written after every file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sidecar {
    pub id: String,
    pub media: Media,
    pub files: Vec<ArchivedFile>,
    pub archived_at: String,
    /// Ghost-hosted copies by file name, when no public archive URL is
    /// configured: uploaded once, reused by later updates.
    #[serde(default)]
    pub ghost_urls: std::collections::BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct Archive {
    s3: Client,
    http: reqwest::Client,
    bucket: String,
    prefix: String,
    /// Hosts (or host suffixes after a dot) media may be downloaded from.
    cdn_hosts: Vec<String>,
}

impl Archive {
    pub fn new(
        s3: Client,
        http: reqwest::Client,
        bucket: String,
        prefix: String,
        cdn_hosts: Vec<String>,
    ) -> Self {
        Self {
            s3,
            http,
            bucket,
            prefix,
            cdn_hosts,
        }
    }

    pub fn file_key(&self, media_id: &str, name: &str) -> String {
        format!("{}{media_id}/{name}", self.prefix)
    }

    fn sidecar_key(&self, media_id: &str) -> String {
        format!("{}{media_id}.json", self.prefix)
    }

    /// Ids of every item with a sidecar, from a listing (about one call per
    /// 1,000 items).
    pub async fn archived_ids(&self) -> Result<HashSet<String>, ArchiveError> {
        let mut ids = HashSet::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(s3_error("ListObjectsV2", &self.prefix))?;
            for object in page.contents() {
                let key = object.key().unwrap_or_default();
                if let Some(id) = key
                    .strip_prefix(&self.prefix)
                    .and_then(|k| k.strip_suffix(".json"))
                {
                    ids.insert(id.to_owned());
                }
            }
        }
        Ok(ids)
    }

    /// Reads an item's sidecar; `None` when it has none yet.
    pub async fn sidecar(&self, media_id: &str) -> Result<Option<Sidecar>, ArchiveError> {
        let key = self.sidecar_key(media_id);
        let reply = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(reply) => reply,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(error) => return Err(s3_error("GetObject", &key)(error)),
        };
        let bytes = reply.body.collect().await.map_err(|e| ArchiveError::S3 {
            operation: "GetObject",
            key: key.clone(),
            message: e.to_string(),
        })?;
        Ok(serde_json::from_slice(&bytes.into_bytes()).ok())
    }

    /// Writes the sidecar: the item is complete once it exists.
    pub async fn write_sidecar(&self, sidecar: &Sidecar) -> Result<(), ArchiveError> {
        let key = self.sidecar_key(&sidecar.id);
        let body = serde_json::to_vec_pretty(sidecar).unwrap_or_default();
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(s3_error("PutObject", &key))?;
        Ok(())
    }

    fn check_host(&self, url: &str) -> Result<reqwest::Url, ArchiveError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| ArchiveError::InvalidUrl)?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(ArchiveError::InvalidUrl);
        }
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        let allowed = self
            .cdn_hosts
            .iter()
            .any(|allowed| host == *allowed || host.ends_with(&format!(".{allowed}")));
        if allowed {
            Ok(parsed)
        } else {
            Err(ArchiveError::HostNotAllowed { host })
        }
    }

    /// Streams one file from the CDN into S3 and returns what was stored.
    /// Holds at most one part in memory.
    pub async fn store(&self, media_id: &str, part: &Part) -> Result<ArchivedFile, ArchiveError> {
        let url = self.check_host(&part.url)?;
        let download = |message: String| ArchiveError::Download {
            name: part.name.clone(),
            message,
        };
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| download(e.without_url().to_string()))?;
        if response.status() == reqwest::StatusCode::FORBIDDEN {
            return Err(ArchiveError::Expired(part.owner_id.clone()));
        }
        if !response.status().is_success() {
            return Err(download(format!("CDN answered {}", response.status())));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(default_type(part.kind))
            .to_owned();
        let key = self.file_key(media_id, &part.name);
        let mut upload = Upload::new(self, &key, &content_type);
        let mut hasher = Sha256::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| download(e.without_url().to_string()))?;
            hasher.update(&chunk);
            if let Err(error) = upload.push(&chunk).await {
                upload.abort().await;
                return Err(error);
            }
        }
        let sha256 = hex::encode(hasher.finalize());
        let bytes = upload.finish(&sha256).await?;
        Ok(ArchivedFile {
            name: part.name.clone(),
            key,
            kind: part.kind,
            content_type,
            bytes,
            sha256,
        })
    }

    /// Opens an archived file as a stream with its length, for uploading
    /// it to Ghost without holding it in memory.
    pub async fn open(&self, key: &str) -> Result<(reqwest::Body, u64), ArchiveError> {
        let reply = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(s3_error("GetObject", key))?;
        let length = reply
            .content_length()
            .and_then(|l| u64::try_from(l).ok())
            .unwrap_or(0);
        let stream =
            tokio_util::io::ReaderStream::with_capacity(reply.body.into_async_read(), 64 * 1024);
        Ok((reqwest::Body::wrap_stream(stream), length))
    }
}

fn default_type(kind: PartKind) -> &'static str {
    match kind {
        PartKind::Video => "video/mp4",
        PartKind::Image | PartKind::Thumbnail => "image/jpeg",
    }
}

/// A single PutObject for small files, multipart once a part fills.
struct Upload<'a> {
    archive: &'a Archive,
    key: &'a str,
    content_type: &'a str,
    buffer: Vec<u8>,
    total: u64,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl<'a> Upload<'a> {
    fn new(archive: &'a Archive, key: &'a str, content_type: &'a str) -> Self {
        Self {
            archive,
            key,
            content_type,
            buffer: Vec::with_capacity(PART_SIZE),
            total: 0,
            upload_id: None,
            parts: Vec::new(),
        }
    }

    async fn push(&mut self, mut chunk: &[u8]) -> Result<(), ArchiveError> {
        while !chunk.is_empty() {
            let room = PART_SIZE - self.buffer.len();
            let take = room.min(chunk.len());
            self.buffer.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buffer.len() == PART_SIZE {
                self.flush_part().await?;
            }
        }
        Ok(())
    }

    async fn flush_part(&mut self) -> Result<(), ArchiveError> {
        let (s3, bucket, key) = (&self.archive.s3, &self.archive.bucket, self.key);
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = s3
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .content_type(self.content_type)
                    .send()
                    .await
                    .map_err(s3_error("CreateMultipartUpload", key))?;
                let id = created.upload_id().unwrap_or_default().to_owned();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let body = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_SIZE));
        self.total += body.len() as u64;
        let uploaded = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(s3_error("UploadPart", key))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    /// Completes the upload; returns the size in bytes.
    async fn finish(mut self, sha256: &str) -> Result<u64, ArchiveError> {
        let (s3, bucket, key) = (&self.archive.s3, &self.archive.bucket, self.key);
        if self.upload_id.is_none() {
            let body = std::mem::take(&mut self.buffer);
            let size = body.len() as u64;
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .content_type(self.content_type)
                .metadata("sha256", sha256)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(s3_error("PutObject", key))?;
            return Ok(size);
        }
        if !self.buffer.is_empty()
            && let Err(error) = self.flush_part().await
        {
            self.abort().await;
            return Err(error);
        }
        let upload_id = self.upload_id.clone().unwrap_or_default();
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(self.parts.clone()))
            .build();
        let result = s3
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(s3_error("CompleteMultipartUpload", key));
        if let Err(error) = result {
            self.abort().await;
            return Err(error);
        }
        Ok(self.total)
    }

    /// Abandons a multipart upload so S3 does not keep its parts.
    async fn abort(&self) {
        let Some(upload_id) = &self.upload_id else {
            return;
        };
        let aborted = self
            .archive
            .s3
            .abort_multipart_upload()
            .bucket(&self.archive.bucket)
            .key(self.key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(error) = aborted {
            tracing::debug!(key = self.key, error = %DisplayErrorContext(&error), "aborting a multipart upload failed");
        }
    }
}
