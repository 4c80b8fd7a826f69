//! Instagram loop metrics.

use prometheus::{Gauge, IntCounter, IntGaugeVec, Opts, Registry};

use crate::metrics::register;

#[derive(Clone)]
pub struct InstagramMetrics {
    pub archived: IntCounter,
    pub bytes: IntCounter,
    pub url_refreshes: IntCounter,
    pub created: IntCounter,
    pub updated: IntCounter,
    pub collisions: IntCounter,
    pub throttled: IntCounter,
    pub drift: IntGaugeVec,
    pub token_expiry: Gauge,
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    register(registry, IntCounter::new(name, help)?)
}

impl InstagramMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            archived: counter(
                registry,
                "tend_instagram_archived_items_total",
                "Media items whose archive (files and sidecar) was written.",
            )?,
            bytes: counter(
                registry,
                "tend_instagram_archived_bytes_total",
                "Bytes of media files streamed from the CDN into S3.",
            )?,
            url_refreshes: counter(
                registry,
                "tend_instagram_url_refreshes_total",
                "Expired signed CDN URLs replaced by fetching the media object again.",
            )?,
            created: counter(
                registry,
                "tend_instagram_posts_created_total",
                "Ghost posts created.",
            )?,
            updated: counter(
                registry,
                "tend_instagram_posts_updated_total",
                "Ghost posts updated after a change on Instagram.",
            )?,
            collisions: counter(
                registry,
                "tend_instagram_post_collisions_total",
                "Ghost edit collisions (409 UPDATE_COLLISION) resolved by reading the post again.",
            )?,
            throttled: counter(
                registry,
                "tend_instagram_throttled_total",
                "Passes paused because the Instagram API throttled tend.",
            )?,
            drift: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "tend_instagram_drift_items",
                        "Media items out of sync after the last pass, by kind (not_archived, not_posted, out_of_date).",
                    ),
                    &["kind"],
                )?,
            )?,
            token_expiry: register(
                registry,
                Gauge::new(
                    "tend_instagram_token_expiry_timestamp_seconds",
                    "Unix time at which the Instagram access token expires; 0 until tend has refreshed it once.",
                )?,
            )?,
        };
        metrics.set_drift(0, 0, 0);
        Ok(metrics)
    }

    pub fn set_drift(&self, not_archived: usize, not_posted: usize, out_of_date: usize) {
        for (kind, value) in [
            ("not_archived", not_archived),
            ("not_posted", not_posted),
            ("out_of_date", out_of_date),
        ] {
            self.drift.with_label_values(&[kind]).set(value as i64);
        }
    }
}
