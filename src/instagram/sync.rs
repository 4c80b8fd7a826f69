//! Syncing one media item: archive its files, write its sidecar, then
//! create or update its post.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tracing::info;

use super::archive::{ArchiveError, ArchivedFile, Sidecar};
use super::ghost::{GhostError, Post, PostFields, Tag};
use super::media::{Media, Part};
use super::render::{Item, items, published_at, stored_fingerprint, title};
use super::{InstagramError, InstagramMetrics, InstagramReconciler, Need, Observed, slug};

/// Edit collisions retried before giving up for this pass.
const COLLISION_RETRIES: usize = 3;

/// Result of syncing one item.
#[derive(Debug, Default, Clone, Copy)]
pub struct Done {
    pub archived: bool,
    pub created: bool,
    pub updated: bool,
}

/// Tally of a pass, shown in `/status` and by `tend reconcile instagram`.
#[derive(Debug, Default)]
pub struct Report {
    pub synced: usize,
    pub archived: usize,
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub not_archived: usize,
    pub not_posted: usize,
    pub out_of_date: usize,
    pub failures: Vec<String>,
    /// Actions a dry run would take.
    pub plan: Vec<String>,
    /// Items still out of sync after the pass, by [`Need`].
    left: [usize; 3],
}

impl Report {
    pub fn count_need(&mut self, need: Need) {
        match need {
            Need::Archive => self.not_archived += 1,
            Need::Post => self.not_posted += 1,
            Need::Update => self.out_of_date += 1,
        }
    }

    pub fn record(&mut self, done: Done) {
        self.synced += 1;
        self.archived += usize::from(done.archived);
        self.created += usize::from(done.created);
        self.updated += usize::from(done.updated);
    }

    /// Records an item that needed `need` and is still out of sync.
    pub fn left(&mut self, need: Need) {
        self.left[need as usize] += 1;
    }

    /// Sets the drift gauges to the items still out of sync after the pass
    /// (found and not fixed) and returns the summary.
    pub fn summary(&self, metrics: &InstagramMetrics, pass: &str) -> Value {
        let failed = self.failures.len();
        let [not_archived, not_posted, out_of_date] = self.left;
        metrics.set_drift(not_archived, not_posted, out_of_date);
        json!({
            "pass": pass,
            "synced": self.synced,
            "archived": self.archived,
            "posts_created": self.created,
            "posts_updated": self.updated,
            "found_not_archived": self.not_archived,
            "found_not_posted": self.not_posted,
            "found_out_of_date": self.out_of_date,
            "deleted_on_instagram": self.deleted,
            "failed": failed,
            "plan": self.plan,
        })
    }
}

impl InstagramReconciler {
    pub(super) async fn sync_item(
        &self,
        media: &Media,
        need: Need,
        observed: &Observed,
    ) -> Result<Done, InstagramError> {
        let mut done = Done::default();
        let existing = if observed.archived.contains(&media.id) {
            self.archive.sidecar(&media.id).await?
        } else {
            None
        };
        let names: Vec<String> = media.parts().into_iter().map(|p| p.name).collect();
        let (files, mut ghost_urls) = match existing {
            Some(sidecar) if sidecar.files.iter().map(|f| &f.name).eq(names.iter()) => {
                (sidecar.files, sidecar.ghost_urls)
            }
            _ => {
                done.archived = true;
                (self.archive_files(media).await?, BTreeMap::new())
            }
        };
        let items = self.post_items(&files, &mut ghost_urls).await?;
        if done.archived || need != Need::Post {
            let sidecar = Sidecar {
                id: media.id.clone(),
                media: media.clone(),
                files: files.clone(),
                archived_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string(),
                ghost_urls: ghost_urls.clone(),
            };
            self.archive.write_sidecar(&sidecar).await?;
            self.metrics.archived.inc();
        }
        let (created, updated) = self.publish(media, &items).await?;
        done.created = created;
        done.updated = updated;
        Ok(done)
    }

    /// Archives every file of `media`, fetching the item again for fresh
    /// URLs when a signed CDN URL has expired.
    async fn archive_files(&self, media: &Media) -> Result<Vec<ArchivedFile>, InstagramError> {
        let mut files = Vec::new();
        for part in media.parts() {
            let stored = match self.archive.store(&media.id, &part).await {
                Err(ArchiveError::Expired(owner)) => {
                    let fresh = self.fresh_part(&owner, &part).await?;
                    self.metrics.url_refreshes.inc();
                    self.archive.store(&media.id, &fresh).await?
                }
                other => other?,
            };
            self.metrics.bytes.inc_by(stored.bytes);
            files.push(stored);
        }
        Ok(files)
    }

    /// Fetches the media object owning `part` again and returns the part
    /// with its new URL. A stored URL is never reused.
    async fn fresh_part(&self, owner: &str, part: &Part) -> Result<Part, InstagramError> {
        let fresh = self.api.media(owner).await?;
        fresh
            .parts()
            .into_iter()
            .find(|p| p.name == part.name)
            .ok_or_else(|| {
                InstagramError::Archive(ArchiveError::Download {
                    name: part.name.clone(),
                    message: "the media object fetched again has no URL for this file".to_owned(),
                })
            })
    }

    /// Returns the post items: archive URLs under the public base URL, or
    /// Ghost-hosted copies uploaded once and remembered in the sidecar.
    async fn post_items(
        &self,
        files: &[ArchivedFile],
        ghost_urls: &mut BTreeMap<String, String>,
    ) -> Result<Vec<Item>, InstagramError> {
        let mut urls = Vec::with_capacity(files.len());
        for file in files {
            let url = match &self.settings.public_base_url {
                Some(base) => format!("{}/{}", base.trim_end_matches('/'), file.key),
                None => match ghost_urls.get(&file.name) {
                    Some(url) => url.clone(),
                    None => {
                        let body = self.archive.open(&file.key).await?;
                        let url = self
                            .ghost
                            .upload(file.kind, &file.name, &file.content_type, body)
                            .await?;
                        ghost_urls.insert(file.name.clone(), url.clone());
                        url
                    }
                },
            };
            urls.push((file.kind, url));
        }
        Ok(items(urls))
    }

    fn fields(
        &self,
        media: &Media,
        items: &[Item],
        existing: Option<&Post>,
    ) -> Result<PostFields, InstagramError> {
        let mut tags: Vec<Tag> = existing.map(|p| p.tags.clone()).unwrap_or_default();
        for name in self
            .settings
            .tags
            .iter()
            .chain(Some(&self.settings.internal_tag))
        {
            if !tags.iter().any(|t| t.name.eq_ignore_ascii_case(name)) {
                tags.push(Tag {
                    name: name.clone(),
                    slug: None,
                });
            }
        }
        let feature_image = items.iter().find_map(|i| {
            if i.kind == "image" {
                Some(i.url.clone())
            } else {
                i.poster.clone()
            }
        });
        Ok(PostFields {
            title: title(media),
            slug: slug(&media.id),
            html: self.renderer.body(media, items)?,
            status: existing.map_or_else(|| "published".to_owned(), |p| p.status.clone()),
            published_at: published_at(&media.timestamp).unwrap_or_else(|| media.timestamp.clone()),
            feature_image,
            tags,
        })
    }

    /// Creates the post, or updates it when its fingerprint differs.
    /// Returns (created, updated).
    async fn publish(&self, media: &Media, items: &[Item]) -> Result<(bool, bool), InstagramError> {
        let slug = slug(&media.id);
        let expected = self.renderer.fingerprint(media);
        for _ in 0..=COLLISION_RETRIES {
            // Looked up before every create: Ghost would make `slug-2`.
            let Some(post) = self.ghost.post_by_slug(&slug).await? else {
                self.ghost.create(&self.fields(media, items, None)?).await?;
                self.metrics.created.inc();
                info!(media_id = %media.id, %slug, "post created");
                return Ok((true, false));
            };
            if post.html.as_deref().and_then(stored_fingerprint) == Some(expected.as_str()) {
                return Ok((false, false));
            }
            match self
                .ghost
                .update(
                    &post.id,
                    &post.updated_at,
                    &self.fields(media, items, Some(&post))?,
                )
                .await
            {
                Ok(_) => {
                    self.metrics.updated.inc();
                    info!(media_id = %media.id, %slug, "post updated");
                    return Ok((false, true));
                }
                Err(GhostError::UpdateCollision(_)) => {
                    self.metrics.collisions.inc();
                    info!(media_id = %media.id, "post edited meanwhile in Ghost; reading it again");
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(GhostError::UpdateCollision(slug).into())
    }
}
