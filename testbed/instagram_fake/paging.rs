//! Cursor-based paging of `/me/media`: the `limit`, `after` and `before`
//! parameters and the `paging` object with its cursors and page URLs.

use serde_json::{Map, Value, json};

use crate::graph_error::GraphError;
use crate::media::{FeedPosition, Library};
use crate::query::{Query, percent_encode};

/// Page size when the request gives no `limit`.
const DEFAULT_LIMIT: usize = 25;

/// Largest `limit` accepted.
// NOTE: Meta documents a maximum page size for some edges without naming
// the one of IG User media or its error message. 100 and this message are
// the fake's choice.
const MAX_LIMIT: usize = 100;

/// The requested slice of the feed.
#[derive(Debug)]
pub struct PageRequest {
    limit: usize,
    after: Option<FeedPosition>,
    before: Option<FeedPosition>,
}

impl PageRequest {
    pub fn parse(query: &Query) -> Result<Self, GraphError> {
        let limit = match query.get("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                .ok_or_else(|| {
                    GraphError::invalid_parameter(&format!(
                        "Param limit must be an integer from 1 to {MAX_LIMIT}, got {text:?}"
                    ))
                })?,
        };
        let cursor = |name: &str| {
            let Some(text) = query.get(name) else {
                return Ok(None);
            };
            decode_cursor(text).map(Some).ok_or_else(|| {
                GraphError::invalid_parameter(&format!("Param {name} is not a valid cursor"))
            })
        };
        Ok(Self {
            limit,
            after: cursor("after")?,
            before: cursor("before")?,
        })
    }

    /// Returns the start and exclusive end index of the page in `library`.
    /// `after` wins where a request gives both cursors.
    pub fn bounds(&self, library: &Library) -> (usize, usize) {
        let total = library.posts().len();
        match (&self.after, &self.before) {
            (Some(after), _) => {
                let start = library.first_after(after);
                (start, (start + self.limit).min(total))
            }
            (None, Some(before)) => {
                let end = library.first_not_before(before);
                (end.saturating_sub(self.limit), end)
            }
            (None, None) => (0, self.limit.min(total)),
        }
    }
}

/// Encodes a feed position as `{timestamp in hex}.{id}`. Clients treat
/// cursors as opaque, and ids contain no `.`, so the split is unambiguous.
fn encode_cursor(position: &FeedPosition) -> String {
    format!("{:x}.{}", position.timestamp, position.id)
}

fn decode_cursor(text: &str) -> Option<FeedPosition> {
    let (timestamp, id) = text.split_once('.')?;
    Some(FeedPosition {
        timestamp: i64::from_str_radix(timestamp, 16).ok()?,
        id: id.to_owned(),
    })
}

/// Returns the `paging` object of the page `start..end`, or None for an
/// empty page. `page_url` is the URL of the listing without paging
/// parameters, and `next` and `previous` keep its other parameters.
pub fn paging_object(
    library: &Library,
    (start, end): (usize, usize),
    query: &Query,
    page_url: &str,
) -> Option<Value> {
    if start >= end {
        return None;
    }
    let posts = library.posts();
    let before = encode_cursor(&FeedPosition::of(&posts[start]));
    let after = encode_cursor(&FeedPosition::of(&posts[end - 1]));

    let mut paging = Map::new();
    paging.insert(
        "cursors".to_owned(),
        json!({ "before": before, "after": after }),
    );
    let link = |name: &str, cursor: &str| {
        let mut url = page_url.to_owned();
        if let Some(limit) = query.get("limit") {
            url.push_str(&format!("&limit={}", percent_encode(limit)));
        }
        url.push_str(&format!("&{name}={}", percent_encode(cursor)));
        url
    };
    if end < posts.len() {
        paging.insert("next".to_owned(), json!(link("after", &after)));
    }
    if start > 0 {
        paging.insert("previous".to_owned(), json!(link("before", &before)));
    }
    Some(Value::Object(paging))
}
