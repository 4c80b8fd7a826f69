//! Ghost Admin API client: posts by slug, create, update, list by tag,
//! image upload. Authenticates with a fresh short-lived JWT per request,
//! signed with the Admin API key, as Ghost requires.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::config::Secret;

/// Ghost's page size limit: `limit=all` is capped at 100 on Ghost 6.
const PAGE_SIZE: u32 = 100;
/// Lifetime of each token; Ghost rejects tokens valid for over 5 minutes.
const TOKEN_SECONDS: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum GhostError {
    #[error("Ghost request failed")]
    Transport(#[source] reqwest::Error),
    #[error("Ghost answered {status} to {operation}: {message}")]
    Status {
        operation: &'static str,
        status: u16,
        message: String,
    },
    #[error("Ghost reported an edit collision on post {0}; re-read it and retry")]
    UpdateCollision(String),
    #[error("Ghost returned an unexpected body to {0}")]
    Decode(&'static str),
    #[error(
        "invalid Ghost Admin API key: expected \"id:hexsecret\" from a custom integration; \
         set instagram.ghost_admin_key (TEND_INSTAGRAM_GHOST_ADMIN_KEY)"
    )]
    InvalidKey,
}

/// A post as tend reads it back.
#[derive(Debug, Clone, Deserialize)]
pub struct Post {
    pub id: String,
    pub slug: String,
    pub status: String,
    pub updated_at: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub feature_image: Option<String>,
    #[serde(default)]
    pub published_at: Option<String>,
    /// Set by editors in Ghost; tend never writes it.
    #[serde(default)]
    pub custom_excerpt: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
}

/// The fields of a post that tend owns and writes.
#[derive(Debug, Clone, Serialize)]
pub struct PostFields {
    pub title: String,
    pub slug: String,
    pub html: String,
    pub status: String,
    pub published_at: String,
    pub feature_image: Option<String>,
    pub tags: Vec<Tag>,
}

#[derive(Clone)]
pub struct Ghost {
    http: reqwest::Client,
    api: String,
    key_id: String,
    secret: Vec<u8>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Ghost {
    pub fn new(http: reqwest::Client, url: &str, admin_key: &Secret) -> Result<Self, GhostError> {
        let (key_id, secret) = admin_key
            .expose()
            .split_once(':')
            .ok_or(GhostError::InvalidKey)?;
        let secret = hex::decode(secret).map_err(|_| GhostError::InvalidKey)?;
        if key_id.is_empty() || secret.is_empty() {
            return Err(GhostError::InvalidKey);
        }
        Ok(Self {
            http,
            api: format!("{}/ghost/api/admin", url.trim_end_matches('/')),
            key_id: key_id.to_owned(),
            secret,
        })
    }

    /// Signs a token valid for five minutes from now.
    fn token(&self) -> String {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": self.key_id});
        let now = unix_now();
        let claims = json!({"iat": now, "exp": now + TOKEN_SECONDS, "aud": "/admin/"});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC accepts keys of any length");
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// Value of the `Authorization` header for one Admin API request.
    pub fn authorization(&self) -> String {
        format!("Ghost {}", self.token())
    }

    /// Base URL of the Admin API, ending in `/ghost/api/admin`.
    pub fn admin_api(&self) -> &str {
        &self.api
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .header("Authorization", self.authorization())
            .header("Accept-Version", "v5.0")
    }

    async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, GhostError> {
        let response = request
            .send()
            .await
            .map_err(|e| GhostError::Transport(e.without_url()))?;
        let status = response.status();
        // A body that cannot be read is treated like one that is not JSON.
        let body = response.bytes().await.unwrap_or_default();
        parse_response(operation, status, &body)
    }

    /// Reads a post by slug, with its html; `None` when there is none.
    pub async fn post_by_slug(&self, slug: &str) -> Result<Option<Post>, GhostError> {
        let path = format!("/posts/slug/{slug}/?formats=html&include=tags");
        match self
            .send("read post", self.request(reqwest::Method::GET, &path))
            .await
        {
            Ok(body) => first_post(body, "read post").map(Some),
            Err(GhostError::Status { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Creates a post from html (Ghost converts it; html cards survive).
    pub async fn create(&self, fields: &PostFields) -> Result<Post, GhostError> {
        let request = self
            .request(
                reqwest::Method::POST,
                "/posts/?source=html&formats=html&include=tags",
            )
            .json(&json!({ "posts": [fields] }));
        first_post(self.send("create post", request).await?, "create post")
    }

    /// Updates the fields tend owns; `updated_at` must be the value last
    /// read, or Ghost rejects the write as an edit collision.
    pub async fn update(
        &self,
        id: &str,
        updated_at: &str,
        fields: &PostFields,
    ) -> Result<Post, GhostError> {
        let mut post =
            serde_json::to_value(fields).map_err(|_| GhostError::Decode("update post"))?;
        post["updated_at"] = json!(updated_at);
        let path = format!("/posts/{id}/?source=html&formats=html&include=tags");
        let request = self
            .request(reqwest::Method::PUT, &path)
            .json(&json!({ "posts": [post] }));
        first_post(self.send("update post", request).await?, "update post")
    }

    /// Sets a post's status only (for unpublishing deleted media).
    pub async fn set_status(&self, post: &Post, status: &str) -> Result<(), GhostError> {
        let path = format!("/posts/{}/", post.id);
        let body = json!({"posts": [{"status": status, "updated_at": post.updated_at}]});
        self.send(
            "update post status",
            self.request(reqwest::Method::PUT, &path).json(&body),
        )
        .await
        .map(|_| ())
    }

    /// Lists every post with the tag `tag_slug`, following pagination.
    pub async fn posts_tagged(&self, tag_slug: &str) -> Result<Vec<Post>, GhostError> {
        let mut posts = Vec::new();
        let mut page = 1;
        loop {
            let path = format!(
                "/posts/?filter=tag:{tag_slug}&limit={PAGE_SIZE}&page={page}&formats=html&include=tags&order=published_at%20desc"
            );
            let body = self
                .send("list posts", self.request(reqwest::Method::GET, &path))
                .await?;
            let (batch, next) = posts_page(&body)?;
            posts.extend(batch);
            match next {
                Some(next) if next > page => page = next,
                _ => return Ok(posts),
            }
        }
    }

    /// Uploads a file, images to the image endpoint and videos to the media
    /// endpoint, and returns the URL Ghost serves it from.
    pub async fn upload(
        &self,
        kind: super::media::PartKind,
        name: &str,
        content_type: &str,
        (body, length): (reqwest::Body, u64),
    ) -> Result<String, GhostError> {
        let (path, field) = match kind {
            super::media::PartKind::Video => ("/media/upload/", "media"),
            _ => ("/images/upload/", "images"),
        };
        let part = reqwest::multipart::Part::stream_with_length(body, length)
            .file_name(name.to_owned())
            .mime_str(content_type)
            .map_err(|e| GhostError::Transport(e.without_url()))?;
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("ref", name.to_owned());
        let request = self.request(reqwest::Method::POST, path).multipart(form);
        let body = self.send("upload file", request).await?;
        uploaded_url(&body, field)
    }
}

/// Parses an Admin API response: the JSON body on a success status,
/// otherwise the first error Ghost reports. A body that is not JSON counts
/// as `null`.
pub(crate) fn parse_response(
    operation: &'static str,
    status: reqwest::StatusCode,
    body: &[u8],
) -> Result<Value, GhostError> {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let first = &body["errors"][0];
    if status.as_u16() == 409 || first["type"] == "UpdateCollisionError" {
        return Err(GhostError::UpdateCollision(operation.to_owned()));
    }
    let message = first["message"]
        .as_str()
        .unwrap_or("no error message")
        .to_owned();
    let context = first["context"]
        .as_str()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    Err(GhostError::Status {
        operation,
        status: status.as_u16(),
        message: format!("{message}{context}"),
    })
}

/// Reads the post from a single-post response (read, create or update).
pub(crate) fn first_post(body: Value, operation: &'static str) -> Result<Post, GhostError> {
    serde_json::from_value(body["posts"][0].clone()).map_err(|_| GhostError::Decode(operation))
}

/// Reads one page of a post list: its posts and the number of the next
/// page, if Ghost reports one.
pub(crate) fn posts_page(body: &Value) -> Result<(Vec<Post>, Option<u64>), GhostError> {
    let posts = serde_json::from_value(body["posts"].clone())
        .map_err(|_| GhostError::Decode("list posts"))?;
    Ok((posts, body["meta"]["pagination"]["next"].as_u64()))
}

/// Reads the URL of an uploaded file from the list named `field`
/// (`images` or `media`).
pub(crate) fn uploaded_url(body: &Value, field: &str) -> Result<String, GhostError> {
    body[field][0]["url"]
        .as_str()
        .map(str::to_owned)
        .ok_or(GhostError::Decode("upload file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_signed_jwt() {
        let key = Secret::new("6489f1c1d0a2a5b1c7a3e4f5:0123456789abcdef0123456789abcdef");
        let ghost = Ghost::new(reqwest::Client::new(), "http://127.0.0.1:2368/", &key).unwrap();
        let token = ghost.token();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["kid"], "6489f1c1d0a2a5b1c7a3e4f5");
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "/admin/");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            300
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(
            &hex::decode("0123456789abcdef0123456789abcdef").unwrap(),
        )
        .unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()),
            parts[2]
        );
    }

    #[test]
    fn malformed_key_rejected() {
        for key in ["nocolon", "id:not-hex", ":00"] {
            assert!(
                Ghost::new(reqwest::Client::new(), "http://x", &Secret::new(key)).is_err(),
                "{key}"
            );
        }
    }
}
