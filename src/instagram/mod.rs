//! The `instagram` loop: every media item of the account archived in S3 and
//! published once as a Ghost post.
//!
//! Desired state is Instagram's media list. Observed state is S3 (the
//! sidecars that mark complete archives) and Ghost (posts with the internal
//! tag, whose html card carries a fingerprint of what they were rendered
//! from); Redis stores only the refreshed token.
//!
//! # Guarantees
//! Safe to repeat after a crash at any await: file keys, sidecar keys and
//! the post slug (`instagram-{media id}`) derive from the media id, and the
//! slug is looked up before every create, because Ghost silently creates
//! `slug-2` for a duplicate. An item counts as archived only once its
//! sidecar exists, and the sidecar is written after every file.
//!
//! Incremental passes read media pages newest first and stop after the
//! first page that is fully in sync; a full pass, every
//! `instagram.full_interval`, reads every page and applies the policy for
//! deleted media.

pub(crate) mod api;
mod archive;
pub(crate) mod ghost;
mod media;
mod metrics;
pub(crate) mod render;
mod sync;
mod token;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

pub use api::{ApiError, ApiMetrics, InstagramApi};
pub use archive::{Archive, ArchiveError, PART_SIZE};
pub use ghost::{Ghost, GhostError, Post, PostFields, Tag};
pub use media::{Media, MediaType};
pub use metrics::InstagramMetrics;
pub use render::{Renderer, TemplateError, published_at, stored_fingerprint, title};
pub use token::TokenStore;

use crate::redis_client::Redis;
use crate::runtime::{CancellationToken, Outcome, Reconciler, error_chain};

pub const LOOP_NAME: &str = "instagram";

/// Policy for the post of media deleted on Instagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletedPolicy {
    Keep,
    Unpublish,
}

/// Settings the reconciler needs besides its clients.
#[derive(Debug, Clone)]
pub struct Settings {
    pub page_size: u32,
    /// Tags every post gets, such as `insta`.
    pub tags: Vec<String>,
    /// Internal tag (starting with `#`) that marks tend's posts.
    pub internal_tag: String,
    /// Base URL serving the archive bucket; without one, images are
    /// uploaded to Ghost.
    pub public_base_url: Option<String>,
    pub deleted: DeletedPolicy,
    pub full_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum InstagramError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Ghost(#[from] GhostError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{failed} of {total} media items failed to sync; first failure: {first}")]
    ItemsFailed {
        failed: usize,
        total: usize,
        first: String,
    },
}

/// Kind of work an item needs, for the plan and the drift metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Archive = 0,
    Post = 1,
    Update = 2,
}

pub struct InstagramReconciler {
    api: InstagramApi,
    archive: Archive,
    ghost: Ghost,
    renderer: Renderer,
    tokens: TokenStore,
    settings: Settings,
    metrics: InstagramMetrics,
    /// Keeps the time of the last full pass (`P:instagram:last_full_pass`),
    /// so a restart does not force a full pass.
    redis: Redis,
    /// Report the plan instead of acting (`--dry-run`).
    dry_run: AtomicBool,
    progress: Mutex<Option<indicatif::ProgressBar>>,
}

/// State a pass observed before acting.
struct Observed {
    archived: HashSet<String>,
    /// Posts with the internal tag, by slug.
    posts: HashMap<String, Post>,
}

pub fn slug(media_id: &str) -> String {
    format!("instagram-{media_id}")
}

impl InstagramReconciler {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        api: InstagramApi,
        archive: Archive,
        ghost: Ghost,
        renderer: Renderer,
        tokens: TokenStore,
        settings: Settings,
        metrics: InstagramMetrics,
        redis: Redis,
    ) -> Self {
        Self {
            api,
            archive,
            ghost,
            renderer,
            tokens,
            settings,
            metrics,
            redis,
            dry_run: AtomicBool::new(false),
            progress: Mutex::new(None),
        }
    }

    /// Makes passes report the plan without writing anything.
    pub fn set_dry_run(&self) {
        self.dry_run.store(true, Ordering::Relaxed);
    }

    fn is_dry_run(&self) -> bool {
        self.dry_run.load(Ordering::Relaxed)
    }

    /// Shows progress on a terminal bar (for backfills from the CLI).
    pub fn set_progress(&self, bar: indicatif::ProgressBar) {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar);
    }

    fn tick(&self, message: &str) {
        if let Some(bar) = self
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            bar.inc(1);
            bar.set_message(message.to_owned());
        }
    }

    fn internal_tag_slug(&self) -> String {
        // Ghost slugs an internal tag `#name` as `hash-name`.
        format!(
            "hash-{}",
            self.settings
                .internal_tag
                .trim_start_matches('#')
                .to_lowercase()
        )
    }

    async fn observe(&self) -> Result<Observed, InstagramError> {
        let archived = self.archive.archived_ids().await?;
        let posts = self
            .ghost
            .posts_tagged(&self.internal_tag_slug())
            .await?
            .into_iter()
            .map(|post| (post.slug.clone(), post))
            .collect();
        Ok(Observed { archived, posts })
    }

    /// Returns what `media` still needs, or `None` when it is in sync.
    fn need(&self, media: &Media, observed: &Observed) -> Option<Need> {
        if !observed.archived.contains(&media.id) {
            return Some(Need::Archive);
        }
        let Some(post) = observed.posts.get(&slug(&media.id)) else {
            return Some(Need::Post);
        };
        let expected = self.renderer.fingerprint(media);
        let stored = post.html.as_deref().and_then(stored_fingerprint);
        (stored != Some(expected.as_str())).then_some(Need::Update)
    }

    fn last_full_key(&self) -> String {
        format!("{}:instagram:last_full_pass", self.redis.prefix())
    }

    /// Returns whether the last full pass is older than `instagram.full_interval`.
    /// When Redis cannot tell, a full pass runs: it only costs calls.
    async fn is_full_pass_due(&self) -> bool {
        let last: Option<u64> = self
            .redis
            .query(redis::cmd("GET").arg(self.last_full_key()))
            .await
            .unwrap_or(None);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        last.is_none_or(|at| now.saturating_sub(at) >= self.settings.full_interval.as_secs())
    }

    async fn record_full_pass(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Err(error) = self
            .redis
            .query::<()>(redis::cmd("SET").arg(self.last_full_key()).arg(now))
            .await
        {
            warn!(%error, "recording the full pass failed; the next pass is a full one again");
        }
    }
}

impl Reconciler for InstagramReconciler {
    type Error = InstagramError;

    fn name(&self) -> &'static str {
        LOOP_NAME
    }

    async fn reconcile(&self, shutdown: &CancellationToken) -> Result<Outcome, InstagramError> {
        if !self.is_dry_run() {
            self.tokens.ensure_fresh().await?;
        }
        let observed = self.observe().await?;
        let full = self.is_full_pass_due().await;
        let mut report = sync::Report::default();
        let mut seen = HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = match self.media_page(after.as_deref()).await {
                Ok(page) => page,
                Err(ApiError::Throttled { retry_after, .. }) => {
                    return Ok(self.throttled(retry_after, &report));
                }
                Err(error) => return Err(error.into()),
            };
            let in_sync = match self
                .sync_page(&page.items, &observed, &mut report, &mut seen, shutdown)
                .await
            {
                PageEnd::Done { in_sync } => in_sync,
                PageEnd::Throttled(retry_after) => return Ok(self.throttled(retry_after, &report)),
                PageEnd::Interrupted => {
                    return Ok(Outcome::done(report.summary(&self.metrics, "interrupted")));
                }
            };
            match page.after {
                Some(next) if full || !in_sync => after = Some(next),
                _ => break,
            }
        }
        if full && !self.is_dry_run() {
            self.apply_deleted_policy(&observed, &seen, &mut report)
                .await;
            self.record_full_pass().await;
        }
        if let Some(first) = report.failures.first() {
            return Err(InstagramError::ItemsFailed {
                failed: report.failures.len(),
                total: report.failures.len() + report.synced,
                first: first.clone(),
            });
        }
        let kind = if full { "full" } else { "incremental" };
        info!(
            pass = kind,
            synced = report.synced,
            "instagram pass finished"
        );
        Ok(Outcome::done(report.summary(&self.metrics, kind)))
    }
}

/// End state of handling one page.
enum PageEnd {
    Done { in_sync: bool },
    Throttled(Duration),
    Interrupted,
}

impl InstagramReconciler {
    /// Syncs the items of one page that need it (or plans them in a dry
    /// run). A failed item is recorded and the others go on.
    async fn sync_page(
        &self,
        items: &[Media],
        observed: &Observed,
        report: &mut sync::Report,
        seen: &mut HashSet<String>,
        shutdown: &CancellationToken,
    ) -> PageEnd {
        let mut in_sync = true;
        for media in items {
            seen.insert(media.id.clone());
            let Some(need) = self.need(media, observed) else {
                continue;
            };
            in_sync = false;
            report.count_need(need);
            if self.is_dry_run() {
                report
                    .plan
                    .push(format!("{need:?} {} ({})", media.id, title(media)));
                report.left(need);
                continue;
            }
            match self.sync_item(media, need, observed).await {
                Ok(done) => report.record(done),
                Err(InstagramError::Api(ApiError::Throttled { retry_after, .. })) => {
                    return PageEnd::Throttled(retry_after);
                }
                Err(error) => {
                    report.left(need);
                    warn!(media_id = %media.id, error = %error_chain(&error), "syncing a media item failed");
                    report
                        .failures
                        .push(format!("{}: {}", media.id, error_chain(&error)));
                }
            }
            self.tick(&media.id);
            if shutdown.is_cancelled() {
                return PageEnd::Interrupted;
            }
        }
        PageEnd::Done { in_sync }
    }

    /// Reads one page; a rejected stored token is dropped for the
    /// configured one and the read tried once more.
    async fn media_page(&self, after: Option<&str>) -> Result<api::Page, ApiError> {
        match self.api.media_page(after, self.settings.page_size).await {
            Err(ApiError::TokenInvalid { .. }) if self.tokens.fall_back().await => {
                self.api.media_page(after, self.settings.page_size).await
            }
            other => other,
        }
    }

    /// Ends a pass early after throttling; the next pass runs after `retry_after`.
    fn throttled(&self, retry_after: Duration, report: &sync::Report) -> Outcome {
        warn!(
            retry_after_seconds = retry_after.as_secs(),
            "Instagram API throttled; pausing the pass"
        );
        self.metrics.throttled.inc();
        Outcome {
            requeue_after: Some(retry_after),
            summary: report.summary(&self.metrics, "throttled"),
        }
    }
}

impl InstagramReconciler {
    /// Unpublishes posts whose media is gone from Instagram, if so configured.
    async fn apply_deleted_policy(
        &self,
        observed: &Observed,
        seen: &HashSet<String>,
        report: &mut sync::Report,
    ) {
        for post in observed.posts.values() {
            let Some(id) = post.slug.strip_prefix("instagram-") else {
                continue;
            };
            if seen.contains(id) {
                continue;
            }
            report.deleted += 1;
            if self.settings.deleted != DeletedPolicy::Unpublish || post.status != "published" {
                continue;
            }
            match self.ghost.set_status(post, "draft").await {
                Ok(()) => info!(
                    media_id = id,
                    "media deleted on Instagram; post unpublished"
                ),
                Err(error) => {
                    warn!(media_id = id, error = %error_chain(&error), "unpublishing a post failed")
                }
            }
        }
    }
}
