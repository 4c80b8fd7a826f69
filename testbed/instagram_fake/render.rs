//! JSON of IG Media and IG User nodes with only the requested fields, as
//! the Graph API returns them. Fields are checked before rendering, so an
//! unknown field fails the whole request as it does at Meta.

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use crate::cdn::FileKind;
use crate::fake::Fake;
use crate::graph_error::GraphError;
use crate::media::{MediaType, Node};
use crate::query::Field;

/// Fields of IG Media that the fake returns.
const MEDIA_FIELDS: [&str; 9] = [
    "id",
    "caption",
    "media_type",
    "media_url",
    "permalink",
    "thumbnail_url",
    "timestamp",
    "username",
    "children",
];

/// Fields of IG User that the fake returns.
const USER_FIELDS: [&str; 4] = ["id", "username", "account_type", "media_count"];

/// Checks a media field selection, nested `children{...}` included.
pub fn check_media_fields(fields: &[Field]) -> Result<(), GraphError> {
    for field in fields {
        if !MEDIA_FIELDS.contains(&field.name.as_str()) {
            return Err(GraphError::nonexisting_field(&field.name, "IGMedia"));
        }
        match (&field.nested, field.name.as_str()) {
            (Some(nested), "children") => check_media_fields(nested)?,
            (Some(_), name) => return Err(no_subfields(name)),
            (None, _) => {}
        }
    }
    Ok(())
}

/// Checks a user field selection.
pub fn check_user_fields(fields: &[Field]) -> Result<(), GraphError> {
    for field in fields {
        let name = field.name.as_str();
        if name == "media" {
            return Err(GraphError::invalid_parameter(
                "tend-instagram-fake does not expand the media edge on IGUser, so request /me/media",
            ));
        }
        if !USER_FIELDS.contains(&name) {
            return Err(GraphError::nonexisting_field(name, "IGUser"));
        }
        if field.nested.is_some() {
            return Err(no_subfields(name));
        }
    }
    Ok(())
}

fn no_subfields(name: &str) -> GraphError {
    GraphError::invalid_parameter(&format!("Field {name} does not take nested fields"))
}

/// Renders the account with checked `fields`.
pub fn render_user(fake: &Fake, fields: &[Field]) -> Value {
    let account = &fake.account;
    let mut object = Map::new();
    for field in fields {
        let value = match field.name.as_str() {
            "id" => json!(account.id),
            "username" => json!(account.username),
            "account_type" => json!(account.account_type),
            "media_count" => json!(fake.library.posts().len()),
            _ => continue,
        };
        object.insert(field.name.clone(), value);
    }
    Value::Object(object)
}

/// Renders a post or child with checked `fields`. Signed URLs expire at
/// `expiry`, in Unix seconds.
pub fn render_media(fake: &Fake, node: Node<'_>, fields: &[Field], expiry: i64) -> Value {
    let url = |kind| {
        fake.signer
            .signed_url(&fake.base_url, node.id, kind, expiry)
    };
    let mut object = Map::new();
    for field in fields {
        let value = match field.name.as_str() {
            "id" => Some(json!(node.id)),
            // Meta returns no caption for album children, and no key at all
            // for a post without one.
            "caption" if node.is_child => None,
            "caption" => node.post.caption.as_ref().map(|caption| json!(caption)),
            "media_type" => Some(json!(node.media_type.as_str())),
            // NOTE: Meta's IG Media reference does not say whether an album
            // has a media_url of its own. The fake gives it none, so
            // clients must read the children's URLs.
            "media_url" => match node.media_type {
                MediaType::Image => Some(json!(url(FileKind::Image))),
                MediaType::Video => Some(json!(url(FileKind::Video))),
                MediaType::CarouselAlbum => None,
            },
            "thumbnail_url" if node.media_type == MediaType::Video => {
                Some(json!(url(FileKind::Image)))
            }
            "permalink" if !node.is_child => Some(json!(node.post.permalink)),
            "timestamp" => Some(json!(crate::time::format(node.post.timestamp))),
            "username" => Some(json!(fake.account.username)),
            "children" if node.media_type == MediaType::CarouselAlbum && !node.is_child => {
                let nested = or_default_fields(field.nested.as_deref());
                Some(render_children(fake, node, &nested, expiry))
            }
            _ => None,
        };
        if let Some(value) = value {
            object.insert(field.name.clone(), value);
        }
    }
    Value::Object(object)
}

/// Renders the `children` edge of a carousel as `{"data": [...]}`.
pub fn render_children(fake: &Fake, carousel: Node<'_>, fields: &[Field], expiry: i64) -> Value {
    let data: Vec<Value> = (carousel.post.children.iter())
        .map(|child| render_media(fake, Node::child(carousel.post, child), fields, expiry))
        .collect();
    json!({ "data": data })
}

/// Returns `fields`, or the id alone where a request names no fields, as
/// the Graph API does.
pub fn or_default_fields(fields: Option<&[Field]>) -> Cow<'_, [Field]> {
    match fields {
        Some(fields) => Cow::Borrowed(fields),
        None => Cow::Owned(vec![Field::plain("id")]),
    }
}
