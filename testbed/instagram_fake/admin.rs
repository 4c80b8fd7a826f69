//! Admin endpoints under `/_fake/` that tests and the playground use to set
//! up and inspect the fake. They are not part of Meta's API. Requests and
//! responses are JSON, and errors are `{"error": "..."}` with a 4xx status.
//!
//! - `POST /_fake/media` with an array of posts (see `seed.rs`) replaces
//!   every post.
//! - `POST /_fake/media/{id}` with `{"caption": "..."}` or
//!   `{"caption": null}` sets or removes a caption, and
//!   `DELETE /_fake/media/{id}` deletes a post with its children.
//! - `POST /_fake/generate` adds many posts (see `generate.rs`).
//! - `POST /_fake/faults` with `{"code": 4, "count": 2,
//!   "estimated_time_to_regain_access": 0}` makes the next Graph calls fail.
//! - `GET /_fake/token` lists the valid tokens, `POST /_fake/token` with
//!   `{"token", "created_at", "expires_at"}` makes one token the only valid
//!   one, and `POST /_fake/token/revoke` with `{"token"}` revokes one.
//! - `POST /_fake/cdn/expire` expires every CDN URL issued so far.
//! - `GET /_fake/calls` returns the calls per endpoint kind, and
//!   `POST /_fake/calls/reset` zeroes them.
//! - `POST /_fake/usage` with `{"call_count", "total_cputime",
//!   "total_time"}` fixes the reported usage, and with `null` returns to
//!   usage computed from the calls of the last hour.

use hyper::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::fake::{Fake, Fault};
use crate::graph_error::fault_codes;
use crate::tokens::{TOKEN_LIFETIME_SECONDS, TokenTimes};
use crate::usage::Percentages;

/// Paths of the fixed admin endpoints, for telling a wrong method from an
/// unknown path.
const PATHS: [&str; 9] = [
    "/_fake/media",
    "/_fake/generate",
    "/_fake/faults",
    "/_fake/token",
    "/_fake/token/revoke",
    "/_fake/cdn/expire",
    "/_fake/calls",
    "/_fake/calls/reset",
    "/_fake/usage",
];

/// Runs one admin request and returns the HTTP status and JSON body.
pub fn handle(fake: &mut Fake, method: &Method, path: &str, body: &[u8]) -> (u16, Value) {
    let result = match (method.as_str(), path) {
        ("POST", "/_fake/media") => parse_json(body).and_then(|media| replace_media(fake, &media)),
        ("POST", "/_fake/generate") => {
            let request = parse_body(body);
            request.and_then(|request| Ok(crate::generate::generate(fake, &request)?))
        }
        ("POST", "/_fake/faults") => parse_body(body).and_then(|fault| set_fault(fake, fault)),
        ("GET", "/_fake/token") => Ok(json!({ "tokens": fake.tokens.listing() })),
        ("POST", "/_fake/token") => parse_body(body).and_then(|token| set_token(fake, token)),
        ("POST", "/_fake/token/revoke") => {
            parse_body(body).and_then(|token| revoke_token(fake, token))
        }
        ("POST", "/_fake/cdn/expire") => {
            fake.signer.expire_all();
            tracing::info!("expired every CDN URL issued so far");
            Ok(json!({}))
        }
        ("GET", "/_fake/calls") => Ok(json!(fake.calls)),
        ("POST", "/_fake/calls/reset") => {
            fake.calls.clear();
            Ok(json!({}))
        }
        ("POST", "/_fake/usage") => parse_json(body).and_then(|usage| set_usage(fake, usage)),
        (_, _) => return route_media_item(fake, method, path, body),
    };
    reply(path, result)
}

/// Handles `POST` and `DELETE /_fake/media/{id}`, and returns 404 or 405
/// for every other request.
fn route_media_item(fake: &mut Fake, method: &Method, path: &str, body: &[u8]) -> (u16, Value) {
    let id = path
        .strip_prefix("/_fake/media/")
        .filter(|id| !id.is_empty());
    let result = match (method.as_str(), id) {
        ("POST", Some(id)) => parse_json(body).and_then(|update| update_caption(fake, id, &update)),
        ("DELETE", Some(id)) => delete_media(fake, id),
        (_, Some(_)) => Err(method_not_allowed(method, path)),
        (_, None) if PATHS.contains(&path) => Err(method_not_allowed(method, path)),
        (_, None) => Err(AdminError {
            status: 404,
            message: format!("no admin endpoint at {path}"),
        }),
    };
    reply(path, result)
}

fn method_not_allowed(method: &Method, path: &str) -> AdminError {
    AdminError {
        status: 405,
        message: format!("method {method} is not allowed on {path}"),
    }
}

/// A rejected admin request: 400 unless stated otherwise.
struct AdminError {
    status: u16,
    message: String,
}

impl From<String> for AdminError {
    fn from(message: String) -> Self {
        Self {
            status: 400,
            message,
        }
    }
}

fn reply(path: &str, result: Result<Value, AdminError>) -> (u16, Value) {
    match result {
        Ok(body) => (200, body),
        Err(error) => {
            tracing::info!(%path, error = %error.message, "rejected admin request");
            (error.status, json!({ "error": error.message }))
        }
    }
}

/// Parses a JSON body. An empty body reads as `null`.
fn parse_json(body: &[u8]) -> Result<Value, AdminError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|error| format!("invalid JSON body: {error}").into())
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|error| format!("invalid request body: {error}").into())
}

fn replace_media(fake: &mut Fake, media: &Value) -> Result<Value, AdminError> {
    let posts = crate::seed::parse_media(media, &fake.reserved_ids())?;
    let count = posts.len();
    fake.library.replace(posts);
    tracing::info!(count, "replaced the media");
    Ok(json!({ "count": count }))
}

/// Sets the caption of a post from `{"caption": "..."}`, or removes it
/// with `{"caption": null}`.
fn update_caption(fake: &mut Fake, id: &str, update: &Value) -> Result<Value, AdminError> {
    let caption = match update
        .as_object()
        .map(|object| (object.len(), object.get("caption")))
    {
        Some((1, Some(Value::String(caption)))) => Some(caption.clone()),
        Some((1, Some(Value::Null))) => None,
        _ => {
            let message = format!(
                "expected {{\"caption\": \"...\"}} or {{\"caption\": null}}, found {update}"
            );
            return Err(message.into());
        }
    };
    let Some(post) = fake.library.post_mut(id) else {
        return Err(not_found(id));
    };
    post.caption = caption.clone();
    tracing::info!(%id, "changed a caption");
    Ok(json!({ "id": id, "caption": caption }))
}

fn delete_media(fake: &mut Fake, id: &str) -> Result<Value, AdminError> {
    if !fake.library.remove(id) {
        return Err(not_found(id));
    }
    tracing::info!(%id, "deleted a post");
    Ok(json!({ "deleted": id }))
}

fn not_found(id: &str) -> AdminError {
    AdminError {
        status: 404,
        message: format!(
            "no post with id {id:?}: a carousel child changes only with its post, by the carousel id"
        ),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    code: i64,
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    estimated_time_to_regain_access: u32,
}

fn one() -> u32 {
    1
}

/// Queues `count` failures of the next Graph calls, replacing any queued
/// fault. A count of 0 removes the fault.
fn set_fault(fake: &mut Fake, request: FaultRequest) -> Result<Value, AdminError> {
    let codes = fault_codes();
    if !codes.contains(&request.code) {
        let codes: Vec<String> = codes.iter().map(i64::to_string).collect();
        let message = format!("code: {} is not one of {}", request.code, codes.join(", "));
        return Err(message.into());
    }
    fake.fault = (request.count > 0).then_some(Fault {
        code: request.code,
        remaining: request.count,
        regain_minutes: request.estimated_time_to_regain_access,
    });
    tracing::info!(code = request.code, count = request.count, "set fault");
    Ok(json!({ "code": request.code, "count": request.count }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    token: String,
    created_at: Option<String>,
    expires_at: Option<String>,
}

/// Makes one token the only valid one. `created_at` defaults to now and
/// `expires_at` to 60 days after `created_at`.
fn set_token(fake: &mut Fake, request: TokenRequest) -> Result<Value, AdminError> {
    if request.token.is_empty() {
        return Err(String::from("token: must not be empty").into());
    }
    let parse = |value: &Option<String>, name: &str| {
        let parsed = value.as_deref().map(crate::time::parse).transpose();
        parsed.map_err(|error| format!("{name}: {error}"))
    };
    let created_at = parse(&request.created_at, "created_at")?.unwrap_or_else(crate::time::now);
    let expires_at =
        parse(&request.expires_at, "expires_at")?.unwrap_or(created_at + TOKEN_LIFETIME_SECONDS);
    if expires_at <= created_at {
        return Err(String::from("expires_at: must be later than created_at").into());
    }
    let times = TokenTimes {
        created_at,
        expires_at,
    };
    fake.tokens.replace(&request.token, times);
    tracing::info!(created_at = %crate::time::format(created_at),
        expires_at = %crate::time::format(expires_at), "replaced the valid token");
    Ok(json!({ "tokens": fake.tokens.listing() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    token: String,
}

fn revoke_token(fake: &mut Fake, request: RevokeRequest) -> Result<Value, AdminError> {
    if !fake.tokens.revoke(&request.token) {
        return Err(AdminError {
            status: 404,
            message: "token: not a valid token, so there is nothing to revoke".to_owned(),
        });
    }
    tracing::info!("revoked a token");
    Ok(json!({ "tokens": fake.tokens.listing() }))
}

/// Fixes the usage the headers report, or with `null` returns to usage
/// computed from the calls of the last hour.
fn set_usage(fake: &mut Fake, usage: Value) -> Result<Value, AdminError> {
    fake.usage.fixed = if usage.is_null() {
        None
    } else {
        let fixed: Percentages =
            serde_json::from_value(usage).map_err(|error| format!("invalid usage: {error}"))?;
        Some(fixed)
    };
    Ok(json!(fake.usage.current()))
}
