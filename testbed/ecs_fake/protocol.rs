//! Wire format of the ECS awsJson1_1 protocol: operation names, error
//! bodies, request ids and the opaque page tokens of the List operations.

use serde_json::{Map, Value, json};

/// Prefix of the `X-Amz-Target` header value before the operation name.
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Error codes the fake returns. The SDK maps each code that the operation
/// models (all but `UnknownOperationException`, `SerializationException` and
/// `ThrottlingException`) to a typed error variant.
pub mod code {
    pub const CLIENT: &str = "ClientException";
    pub const SERVER: &str = "ServerException";
    pub const INVALID_PARAMETER: &str = "InvalidParameterException";
    pub const CLUSTER_NOT_FOUND: &str = "ClusterNotFoundException";
    pub const CLUSTER_CONTAINS_INSTANCES: &str = "ClusterContainsContainerInstancesException";
    pub const CLUSTER_CONTAINS_TASKS: &str = "ClusterContainsTasksException";
    pub const CONFLICT: &str = "ConflictException";
    pub const UNKNOWN_OPERATION: &str = "UnknownOperationException";
    pub const SERIALIZATION: &str = "SerializationException";
}

/// An error response: its `__type` code, message and the extra members
/// that some error shapes model, such as `resourceIds` of
/// `ConflictException`.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    pub code: String,
    pub message: String,
    pub members: Map<String, Value>,
}

impl AwsError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            members: Map::new(),
        }
    }

    /// Adds a member to the error body next to `__type` and `message`.
    pub fn with_member(mut self, name: &str, value: Value) -> Self {
        self.members.insert(name.to_owned(), value);
        self
    }

    pub fn client(message: impl Into<String>) -> Self {
        Self::new(code::CLIENT, message)
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_PARAMETER, message)
    }

    pub fn cluster_not_found() -> Self {
        Self::new(code::CLUSTER_NOT_FOUND, "Cluster not found.")
    }

    /// Returns 500 for `ServerException`, the only server-side error ECS
    /// models, and 400 for every other code.
    pub fn status(&self) -> u16 {
        if self.code == code::SERVER { 500 } else { 400 }
    }

    pub fn body(&self) -> Value {
        let mut body = self.members.clone();
        body.insert("__type".to_owned(), json!(self.code));
        body.insert("message".to_owned(), json!(self.message));
        Value::Object(body)
    }
}

/// Extracts the operation name from an `X-Amz-Target` header value.
pub fn operation_name(target: Option<&str>) -> Result<&str, AwsError> {
    let Some(target) = target else {
        return Err(AwsError::new(
            code::UNKNOWN_OPERATION,
            "missing X-Amz-Target header",
        ));
    };
    match target.strip_prefix(TARGET_PREFIX) {
        Some(operation) if !operation.is_empty() => Ok(operation),
        _ => Err(AwsError::new(
            code::UNKNOWN_OPERATION,
            format!("unknown X-Amz-Target {target:?}: expected {TARGET_PREFIX}<Operation>"),
        )),
    }
}

/// Returns a random request id in the UUID layout that AWS uses.
pub fn request_id() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        fastrand::u16(0x8000..0xc000),
        fastrand::u64(..1 << 48),
    )
}

/// Encodes a page token: the scope of the listing (operation, cluster and
/// filter) and the `seq` of the last item returned, hex-encoded so that
/// clients treat it as opaque.
pub fn encode_page_token(scope: &str, last_seq: u64) -> String {
    let plain = format!("{scope}\n{last_seq}");
    plain.bytes().map(|byte| format!("{byte:02x}")).collect()
}

/// Decodes a token from `encode_page_token`, rejecting one made for another
/// scope, as ECS rejects a token passed to a different listing.
pub fn decode_page_token(token: &str, scope: &str) -> Result<u64, AwsError> {
    let invalid = || AwsError::invalid_parameter(format!("Invalid nextToken {token:?}."));
    let bytes = decode_hex(token).ok_or_else(invalid)?;
    let plain = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (token_scope, last_seq) = plain.rsplit_once('\n').ok_or_else(invalid)?;
    if token_scope != scope {
        return Err(invalid());
    }
    last_seq.parse().map_err(|_| invalid())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|start| u8::from_str_radix(&text[start..start + 2], 16).ok())
        .collect()
}
