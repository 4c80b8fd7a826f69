//! HTTP/1 server: routes `POST /` to the ECS operations and `/_fake/` to
//! the admin endpoints.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response};
use serde_json::{Value, json};

use crate::fake::Fake;
use crate::{admin, ops, protocol};

pub type SharedFake = Arc<Mutex<Fake>>;

/// Largest request body accepted. Seed documents are the largest bodies.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Routes one request and returns its response. It takes the fake by value
/// because the accept loop in `serve.rs` needs futures that own their data.
pub async fn respond(fake: SharedFake, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::warn!(%error, path = %parts.uri.path(), "failed to read request body");
            let message = format!("failed to read the request body: {error}");
            return json_response(400, "application/json", &json!({ "error": message }));
        }
    };

    let path = parts.uri.path();
    if path.starts_with("/_fake/") {
        let mut guard = lock(&fake);
        let reply = admin::handle(&mut guard, parts.method.as_str(), path, &body);
        guard.flush_events();
        drop(guard);
        return json_response(reply.status, "application/json", &reply.body);
    }
    if parts.method == Method::POST && path == "/" {
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|value| value.to_str().ok());
        return aws_response(&fake, target, &body);
    }
    let message = format!(
        "no endpoint for {} {path}: ECS requests are POST / and admin requests use /_fake/",
        parts.method
    );
    json_response(404, "application/json", &json!({ "error": message }))
}

/// Runs one ECS operation and wraps its result in an awsJson1_1 response.
fn aws_response(fake: &SharedFake, target: Option<&str>, body: &[u8]) -> Response<Full<Bytes>> {
    let mut guard = lock(fake);
    let result = ops::dispatch(&mut guard, target, body);
    guard.flush_events();
    drop(guard);
    let request_id = protocol::request_id();
    let (status, output, error_type) = match result {
        Ok(output) => (200, output, None),
        Err(error) => {
            tracing::debug!(?target, code = %error.code, message = %error.message, %request_id,
                "returned ECS error");
            (error.status(), error.body(), Some(error.code))
        }
    };
    let mut response = json_response(status, protocol::CONTENT_TYPE, &output);
    let headers = response.headers_mut();
    let request_id = request_id
        .parse()
        .expect("request id is a valid header value");
    headers.insert("x-amzn-requestid", request_id);
    // The awsJson protocols let clients take the error code from this
    // header before `__type` in the body, so AWS services send both.
    if let Some(code) = error_type.and_then(|code| HeaderValue::from_str(&code).ok()) {
        headers.insert("x-amzn-errortype", code);
    }
    response
}

fn json_response(status: u16, content_type: &'static str, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).expect("a JSON value always serializes");
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(bytes)))
        .expect("status and headers are valid")
}

/// Locks the state. A handler that panicked leaves the lock poisoned, and
/// the fake keeps serving with whatever state the handler left.
pub fn lock(fake: &SharedFake) -> MutexGuard<'_, Fake> {
    fake.lock().unwrap_or_else(PoisonError::into_inner)
}
