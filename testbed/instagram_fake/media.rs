//! The account's media: posts sorted newest first, carousel children, and
//! the position keys that page cursors encode.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Video size when a seed gives none: 256 KiB.
pub const DEFAULT_VIDEO_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MediaType {
    Image,
    Video,
    CarouselAlbum,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "IMAGE",
            Self::Video => "VIDEO",
            Self::CarouselAlbum => "CAROUSEL_ALBUM",
        }
    }
}

/// One image or video inside a carousel.
#[derive(Debug, Clone)]
pub struct Child {
    pub id: String,
    pub media_type: MediaType,
    /// File size of a video child. Images ignore it.
    pub size_bytes: u64,
}

/// One post of the account.
#[derive(Debug, Clone)]
pub struct Media {
    pub id: String,
    pub media_type: MediaType,
    pub caption: Option<String>,
    /// Unix seconds.
    pub timestamp: i64,
    pub permalink: String,
    /// File size of a video. Images and carousels ignore it.
    pub size_bytes: u64,
    pub children: Vec<Child>,
}

/// A post or a carousel child, as the Graph API reads it by id.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    pub id: &'a str,
    pub media_type: MediaType,
    pub size_bytes: u64,
    /// The post itself, or the carousel that contains the child.
    pub post: &'a Media,
    pub is_child: bool,
}

impl<'a> Node<'a> {
    pub fn post(post: &'a Media) -> Self {
        Self {
            id: &post.id,
            media_type: post.media_type,
            size_bytes: post.size_bytes,
            post,
            is_child: false,
        }
    }

    pub fn child(post: &'a Media, child: &'a Child) -> Self {
        Self {
            id: &child.id,
            media_type: child.media_type,
            size_bytes: child.size_bytes,
            post,
            is_child: true,
        }
    }
}

/// Position of a post in the feed: newer timestamps first, and among equal
/// timestamps the larger id first, comparing ids by length and then text
/// so that numeric ids compare as numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPosition {
    pub timestamp: i64,
    pub id: String,
}

impl FeedPosition {
    pub fn of(media: &Media) -> Self {
        Self {
            timestamp: media.timestamp,
            id: media.id.clone(),
        }
    }
}

impl Ord for FeedPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .timestamp
            .cmp(&self.timestamp)
            .then_with(|| other.id.len().cmp(&self.id.len()))
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialOrd for FeedPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Location of an id: a post, or child `child` of a post.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Post(usize),
    Child(usize, usize),
}

/// The posts in feed order with an index of every post and child id.
#[derive(Debug, Default)]
pub struct Library {
    posts: Vec<Media>,
    slots: HashMap<String, Slot>,
}

impl Library {
    /// Replaces every post. The caller has checked that ids are unique.
    pub fn replace(&mut self, posts: Vec<Media>) {
        self.posts = posts;
        self.reindex();
    }

    /// Adds posts. The caller has checked that no id is taken.
    pub fn extend(&mut self, posts: Vec<Media>) {
        self.posts.extend(posts);
        self.reindex();
    }

    pub fn posts(&self) -> &[Media] {
        &self.posts
    }

    pub fn contains(&self, id: &str) -> bool {
        self.slots.contains_key(id)
    }

    /// Returns the post or child with `id`.
    pub fn node(&self, id: &str) -> Option<Node<'_>> {
        let node = match *self.slots.get(id)? {
            Slot::Post(index) => Node::post(&self.posts[index]),
            Slot::Child(index, child) => {
                let post = &self.posts[index];
                Node::child(post, &post.children[child])
            }
        };
        Some(node)
    }

    /// Returns the post with `id`, but not a child.
    pub fn post_mut(&mut self, id: &str) -> Option<&mut Media> {
        match self.slots.get(id)? {
            Slot::Post(index) => Some(&mut self.posts[*index]),
            Slot::Child(..) => None,
        }
    }

    /// Removes the post with `id` and its children. Returns false if no
    /// post has that id.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(Slot::Post(index)) = self.slots.get(id) else {
            return false;
        };
        self.posts.remove(*index);
        self.reindex();
        true
    }

    /// Returns the index of the first post that comes after `position` in
    /// the feed.
    pub fn first_after(&self, position: &FeedPosition) -> usize {
        self.posts
            .partition_point(|post| FeedPosition::of(post) <= *position)
    }

    /// Returns the index of the first post that does not come before
    /// `position` in the feed.
    pub fn first_not_before(&self, position: &FeedPosition) -> usize {
        self.posts
            .partition_point(|post| FeedPosition::of(post) < *position)
    }

    /// Sorts the posts into feed order and rebuilds the id index.
    fn reindex(&mut self) {
        self.posts.sort_by_cached_key(FeedPosition::of);
        self.slots.clear();
        for (index, post) in self.posts.iter().enumerate() {
            self.slots.insert(post.id.clone(), Slot::Post(index));
            for (child, item) in post.children.iter().enumerate() {
                self.slots
                    .insert(item.id.clone(), Slot::Child(index, child));
            }
        }
    }
}
