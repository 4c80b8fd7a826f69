//! The Graph API of the Instagram API with Instagram Login: `/me`,
//! `/me/media`, `/{media-id}`, `/{media-id}/children` and
//! `/refresh_access_token`, each with or without a version segment such as
//! `/v21.0`. Every response carries the usage headers.

use hyper::{Method, Response};
use serde_json::{Value, json};

use crate::fake::Fake;
use crate::graph_error::GraphError;
use crate::media::Node;
use crate::paging::{PageRequest, paging_object};
use crate::query::{Field, Query, parse_fields, percent_encode};
use crate::render::{
    check_media_fields, check_user_fields, or_default_fields, render_children, render_media,
    render_user,
};
use crate::server::{ResponseBody, json_response};
use crate::usage::{Percentages, app_usage_header, business_usage_header};

/// A Graph endpoint and the id it addresses.
#[derive(Debug)]
enum Route<'a> {
    Me,
    MyMedia,
    Media(&'a str),
    Children(&'a str),
    Refresh,
}

impl Route<'_> {
    /// Returns the endpoint kind that `GET /_fake/calls` counts.
    fn kind(&self) -> &'static str {
        match self {
            Self::Me => "me",
            Self::MyMedia => "me/media",
            Self::Media(_) | Self::Children(_) => "media",
            Self::Refresh => "refresh_access_token",
        }
    }

    /// Returns the id named in errors about the request method.
    fn object_id(&self) -> &str {
        match self {
            Self::Me | Self::MyMedia => "me",
            Self::Media(id) | Self::Children(id) => id,
            Self::Refresh => "refresh_access_token",
        }
    }
}

/// A failed call and the `estimated_time_to_regain_access` it reports.
struct Failure {
    error: GraphError,
    regain_minutes: u32,
}

impl From<GraphError> for Failure {
    fn from(error: GraphError) -> Self {
        Self {
            error,
            regain_minutes: 0,
        }
    }
}

/// Serves one Graph API request. Requests to unknown paths are not counted.
pub fn respond(
    fake: &mut Fake,
    method: &Method,
    path: &str,
    query: &Query,
) -> Response<ResponseBody> {
    let now = crate::time::now();
    let (version, segments) = split_version(path);
    let route = match route(&fake.account.id, &segments) {
        Ok(route) => route,
        Err(error) => return error_response(fake, &Failure::from(error)),
    };
    *fake.calls.entry(route.kind().to_owned()).or_default() += 1;
    fake.usage.record(now);

    let outcome = if method == Method::GET {
        handle(fake, &route, version, query, now)
    } else {
        Err(GraphError::unknown_object(method.as_str(), route.object_id()).into())
    };
    match outcome {
        Ok(body) => with_usage_headers(fake, json_response(200, &body), None),
        Err(failure) => {
            tracing::debug!(%path, code = failure.error.code, message = %failure.error.message,
                "returned Graph API error");
            error_response(fake, &failure)
        }
    }
}

/// Splits a leading version segment such as `v21.0` off the path segments.
fn split_version(path: &str) -> (Option<&str>, Vec<&str>) {
    let mut segments: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    let is_version = |segment: &str| {
        let Some((major, minor)) = segment.strip_prefix('v').and_then(|v| v.split_once('.')) else {
            return false;
        };
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        digits(major) && digits(minor)
    };
    match segments.first() {
        Some(first) if is_version(first) => {
            let version = segments.remove(0);
            (Some(version), segments)
        }
        _ => (None, segments),
    }
}

fn route<'a>(account_id: &str, segments: &[&'a str]) -> Result<Route<'a>, GraphError> {
    let is_me = |segment: &str| segment == "me" || segment == account_id;
    match segments {
        ["refresh_access_token"] => Ok(Route::Refresh),
        [node] if is_me(node) => Ok(Route::Me),
        [node, "media"] if is_me(node) => Ok(Route::MyMedia),
        [id] => Ok(Route::Media(id)),
        [id, "children"] => Ok(Route::Children(id)),
        [] => Err(GraphError::unknown_path("/")),
        [_, rest @ ..] => Err(GraphError::unknown_path(&format!("/{}", rest.join("/")))),
    }
}

fn handle(
    fake: &mut Fake,
    route: &Route<'_>,
    version: Option<&str>,
    query: &Query,
    now: i64,
) -> Result<Value, Failure> {
    if let Some(fault) = fake.take_fault() {
        return Err(Failure {
            error: GraphError::injected(fault.code).expect("admin accepts only fault codes"),
            regain_minutes: fault.regain_minutes,
        });
    }
    if let Route::Refresh = route {
        return refresh(fake, query, now).map_err(Failure::from);
    }
    fake.tokens.check(query.get("access_token"), now)?;

    let fields = requested_fields(query)?;
    let expiry = now + fake.url_ttl_seconds;
    let body = match route {
        Route::Me => {
            check_user_fields(&fields)?;
            render_user(fake, &fields)
        }
        Route::MyMedia => list_media(fake, &fields, version, query, expiry)?,
        Route::Media(id) => {
            check_media_fields(&fields)?;
            let node = fake.library.node(id);
            let node = node.ok_or_else(|| GraphError::unknown_object("GET", id))?;
            render_media(fake, node, &fields, expiry)
        }
        Route::Children(id) => {
            check_media_fields(&fields)?;
            let node = fake.library.node(id);
            let node = node.ok_or_else(|| GraphError::unknown_object("GET", id))?;
            children_edge(fake, node, &fields, expiry)
        }
        Route::Refresh => unreachable!("refresh is handled above"),
    };
    Ok(body)
}

/// Parses the `fields` parameter, defaulting to the id alone.
fn requested_fields(query: &Query) -> Result<Vec<Field>, GraphError> {
    let fields = query.get("fields").map(parse_fields).transpose();
    let fields = fields.map_err(|error| {
        GraphError::invalid_parameter(&format!("Syntax error in the fields parameter: {error}"))
    })?;
    Ok(or_default_fields(fields.as_deref()).into_owned())
}

fn list_media(
    fake: &Fake,
    fields: &[Field],
    version: Option<&str>,
    query: &Query,
    expiry: i64,
) -> Result<Value, GraphError> {
    check_media_fields(fields)?;
    let page = PageRequest::parse(query)?;
    let (start, end) = page.bounds(&fake.library);
    let data: Vec<Value> = fake.library.posts()[start..end]
        .iter()
        .map(|post| render_media(fake, Node::post(post), fields, expiry))
        .collect();

    let mut body = json!({ "data": data });
    let page_url = listing_url(fake, version, query);
    if let Some(paging) = paging_object(&fake.library, (start, end), query, &page_url) {
        body["paging"] = paging;
    }
    Ok(body)
}

/// Returns the `/me/media` URL with the token and fields of `query`, to
/// which the page links add `limit` and a cursor.
fn listing_url(fake: &Fake, version: Option<&str>, query: &Query) -> String {
    let prefix = version
        .map(|version| format!("/{version}"))
        .unwrap_or_default();
    let token = query.get("access_token").unwrap_or_default();
    let mut url = format!(
        "{}{prefix}/me/media?access_token={}",
        fake.base_url,
        percent_encode(token)
    );
    if let Some(fields) = query.get("fields") {
        url.push_str(&format!("&fields={}", percent_encode(fields)));
    }
    url
}

/// Returns the children of a carousel, and an empty list for other media.
fn children_edge(fake: &Fake, node: Node<'_>, fields: &[Field], expiry: i64) -> Value {
    if node.is_child || node.post.children.is_empty() {
        return json!({ "data": [] });
    }
    render_children(fake, node, fields, expiry)
}

fn refresh(fake: &mut Fake, query: &Query, now: i64) -> Result<Value, GraphError> {
    let grant_type = query.get("grant_type").unwrap_or_default();
    if grant_type != "ig_refresh_token" {
        return Err(GraphError::invalid_parameter(&format!(
            "Param grant_type must be ig_refresh_token, got {grant_type:?}"
        )));
    }
    let refreshed = fake.tokens.refresh(query.get("access_token"), now)?;
    tracing::info!(
        expires_in = refreshed.expires_in,
        "refreshed an access token"
    );
    Ok(json!({
        "access_token": refreshed.token,
        "token_type": "bearer",
        "expires_in": refreshed.expires_in,
    }))
}

fn error_response(fake: &Fake, failure: &Failure) -> Response<ResponseBody> {
    let error = &failure.error;
    let response = json_response(error.status, &error.body());
    if !error.is_throttling() {
        return with_usage_headers(fake, response, None);
    }
    // A throttled call reports its quota as used up.
    let usage = Percentages {
        call_count: 100,
        ..fake.usage.current()
    };
    with_usage_headers(fake, response, Some((usage, failure.regain_minutes)))
}

/// Adds `X-App-Usage` and `X-Business-Use-Case-Usage`, with the current
/// usage unless `throttled` gives the usage and minutes to report.
fn with_usage_headers(
    fake: &Fake,
    mut response: Response<ResponseBody>,
    throttled: Option<(Percentages, u32)>,
) -> Response<ResponseBody> {
    let (usage, regain_minutes) = throttled.unwrap_or((fake.usage.current(), 0));
    let business = business_usage_header(&fake.account.id, usage, regain_minutes);
    let headers = response.headers_mut();
    let app = app_usage_header(usage);
    headers.insert("x-app-usage", app.parse().expect("JSON header is ASCII"));
    headers.insert(
        "x-business-use-case-usage",
        business.parse().expect("account ids are ASCII"),
    );
    response
}
