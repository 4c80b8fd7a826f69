//! HTTP/1 server: routes `/_fake/` to the admin endpoints, `/cdn/` to the
//! CDN and every other path to the Graph API.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, RANGE};
use hyper::{Request, Response};
use serde_json::{Value, json};

use crate::fake::Fake;
use crate::query::Query;
use crate::{admin, cdn, graph};

pub type SharedFake = Arc<Mutex<Fake>>;

/// Body of every response: a JSON or text document, or a streamed file.
pub type ResponseBody = BoxBody<Bytes, Infallible>;

/// Largest admin request body accepted. Media lists are the largest, and
/// `POST /_fake/generate` creates bigger libraries without a body.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Routes one request and returns its response. It takes the fake by value
/// because the accept loop in `serve.rs` needs futures that own their data.
pub async fn respond(fake: SharedFake, request: Request<Incoming>) -> Response<ResponseBody> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let query = Query::parse(parts.uri.query());

    if path.starts_with("/_fake/") {
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                tracing::warn!(%error, %path, "failed to read an admin request body");
                let message = format!("failed to read the request body: {error}");
                return json_response(400, &json!({ "error": message }));
            }
        };
        let (status, reply) = admin::handle(&mut lock(&fake), &parts.method, path, &body);
        return json_response(status, &reply);
    }
    if path.starts_with("/cdn/") {
        let range = parts
            .headers
            .get(RANGE)
            .and_then(|value| value.to_str().ok());
        return cdn::respond(&mut lock(&fake), &parts.method, path, &query, range);
    }
    graph::respond(&mut lock(&fake), &parts.method, path, &query)
}

pub fn json_response(status: u16, body: &Value) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).expect("a JSON value always serializes");
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(bytes)).boxed())
        .expect("status and headers are valid")
}

pub fn text_response(status: u16, text: &'static str) -> Response<ResponseBody> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(text.as_bytes())).boxed())
        .expect("status and headers are valid")
}

/// Locks the fake. A handler that panicked leaves the lock poisoned, and
/// the fake keeps serving with whatever state the handler left.
fn lock(fake: &SharedFake) -> MutexGuard<'_, Fake> {
    fake.lock().unwrap_or_else(PoisonError::into_inner)
}
