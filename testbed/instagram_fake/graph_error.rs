//! Graph API errors in Meta's shape:
//! `{"error": {"message", "type", "code", "error_subcode", "is_transient",
//! "fbtrace_id"}}`, as described in Meta's "Handling Errors" guide for the
//! Graph API.

use serde_json::{Map, Value, json};

/// Transient errors that a fault injects: code, HTTP status and message.
/// Codes 1 (unknown), 2 (service), 4 (app), 17 (user), 32 (page) and 613
/// (custom rate limit) are in the Graph API error guide. 80002 is the
/// business use case throttling code for Instagram, whose calls Meta's rate
/// limiting page puts under business use case limits.
// NOTE: Meta's pages give no HTTP status for throttling errors, and the
// 80002 message here is approximate. Clients report 403 for code 4 (and
// 400 in older reports), so every throttling code uses 403.
const TRANSIENT_ERRORS: [(i64, u16, &str); 7] = [
    (1, 500, "An unknown error occurred"),
    (2, 503, "Service temporarily unavailable"),
    (4, 403, "(#4) Application request limit reached"),
    (17, 403, "(#17) User request limit reached"),
    (32, 403, "(#32) Page request limit reached"),
    (
        613,
        403,
        "(#613) Calls to this api have exceeded the rate limit.",
    ),
    (
        80002,
        403,
        "(#80002) There have been too many calls to this Instagram account. Wait a bit and try \
         again.",
    ),
];

/// Codes whose responses report the call quota as used up.
const THROTTLING_CODES: [i64; 5] = [4, 17, 32, 613, 80002];

/// Code of an invalid token, which a fault can also inject.
const INVALID_TOKEN_CODE: i64 = 190;

/// Returns the codes that `POST /_fake/faults` accepts.
pub fn fault_codes() -> Vec<i64> {
    let transient = TRANSIENT_ERRORS.iter().map(|(code, _, _)| *code);
    transient.chain([INVALID_TOKEN_CODE]).collect()
}

#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub kind: &'static str,
    pub message: String,
    pub is_transient: Option<bool>,
}

impl GraphError {
    fn new(status: u16, code: i64, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            subcode: None,
            kind,
            message: message.into(),
            is_transient: None,
        }
    }

    /// Code 190 with subcode 467 for a token the fake does not know, such
    /// as a revoked one.
    pub fn invalid_token() -> Self {
        let mut error = Self::new(
            400,
            INVALID_TOKEN_CODE,
            "OAuthException",
            "Invalid OAuth access token - Cannot parse access token",
        );
        error.subcode = Some(467);
        error
    }

    /// Code 190 with subcode 463 for a token past its expiry.
    pub fn expired_token(expired_at: i64, now: i64) -> Self {
        let message = format!(
            "Error validating access token: Session has expired on {}. The current time is {}.",
            crate::time::format_session_date(expired_at),
            crate::time::format_session_date(now)
        );
        let mut error = Self::new(400, INVALID_TOKEN_CODE, "OAuthException", message);
        error.subcode = Some(463);
        error
    }

    pub fn missing_token() -> Self {
        Self::new(
            400,
            2500,
            "OAuthException",
            "An active access token must be used to query information about the current user.",
        )
    }

    /// Code 100 with subcode 33 for an id that names no object.
    pub fn unknown_object(method: &str, id: &str) -> Self {
        let message = format!(
            "Unsupported {} request. Object with ID '{id}' does not exist, cannot be loaded due \
             to missing permissions, or does not support this operation.",
            method.to_ascii_lowercase()
        );
        let mut error = Self::new(400, 100, "GraphMethodException", message);
        error.subcode = Some(33);
        error
    }

    pub fn unknown_path(components: &str) -> Self {
        let message = format!("Unknown path components: {components}");
        Self::new(400, 2500, "OAuthException", message)
    }

    /// Code 100 for an invalid parameter, with Meta's `(#100)` prefix.
    pub fn invalid_parameter(message: &str) -> Self {
        Self::new(400, 100, "OAuthException", format!("(#100) {message}"))
    }

    pub fn nonexisting_field(field: &str, node_type: &str) -> Self {
        Self::invalid_parameter(&format!(
            "Tried accessing nonexisting field ({field}) on node type ({node_type})"
        ))
    }

    /// Rejects refreshing a token younger than 24 hours, which Meta's
    /// refresh_access_token reference forbids.
    pub fn token_too_young() -> Self {
        // NOTE: Meta documents the 24-hour rule but not the error it
        // returns, so this code and message are the fake's own.
        Self::invalid_parameter(
            "The access token was created less than 24 hours ago and cannot be refreshed yet",
        )
    }

    /// Returns the error that a fault with `code` injects, or None for a
    /// code not in `fault_codes`.
    pub fn injected(code: i64) -> Option<Self> {
        if code == INVALID_TOKEN_CODE {
            return Some(Self::invalid_token());
        }
        let (_, status, message) = TRANSIENT_ERRORS.iter().find(|entry| entry.0 == code)?;
        let mut error = Self::new(*status, code, "OAuthException", *message);
        error.is_transient = Some(true);
        Some(error)
    }

    /// Returns true for the throttling codes, whose responses report full
    /// usage in the usage headers.
    pub fn is_throttling(&self) -> bool {
        THROTTLING_CODES.contains(&self.code)
    }

    /// Builds the JSON body with a fresh `fbtrace_id`.
    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("message".to_owned(), json!(self.message));
        error.insert("type".to_owned(), json!(self.kind));
        error.insert("code".to_owned(), json!(self.code));
        if let Some(subcode) = self.subcode {
            error.insert("error_subcode".to_owned(), json!(subcode));
        }
        if let Some(is_transient) = self.is_transient {
            error.insert("is_transient".to_owned(), json!(is_transient));
        }
        error.insert("fbtrace_id".to_owned(), json!(trace_id()));
        json!({ "error": error })
    }
}

/// Returns a random 27-character id in the style of Meta's `fbtrace_id`.
fn trace_id() -> String {
    (0..27).map(|_| fastrand::alphanumeric()).collect()
}
