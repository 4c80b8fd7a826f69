//! Instagram loop settings: `[instagram]` in the file, `TEND_INSTAGRAM_*`
//! in the environment.

use std::time::Duration;

use serde::Serialize;

use super::settings::Settings;
use super::{Secret, human_duration};

#[derive(Debug, Clone, Serialize)]
pub struct InstagramConfig {
    pub enabled: bool,
    /// Long-lived Instagram access token (Instagram API with Instagram Login).
    pub access_token: Secret,
    pub api_url: String,
    pub api_version: String,
    /// Media items per API page (at most 100).
    pub page_size: u64,
    /// Hosts media may be downloaded from (a host or a parent domain).
    pub cdn_hosts: Vec<String>,
    pub bucket: String,
    pub key_prefix: String,
    /// Public URL of the archive (a CDN in front of the bucket); without
    /// one, images are uploaded to Ghost.
    pub public_base_url: Option<String>,
    pub ghost_url: String,
    pub ghost_admin_key: Secret,
    pub tags: Vec<String>,
    pub internal_tag: String,
    /// Path of a post template overriding the built-in one.
    pub template: Option<String>,
    pub deleted: crate::instagram::DeletedPolicy,
    #[serde(serialize_with = "human_duration")]
    pub interval: Duration,
    #[serde(serialize_with = "human_duration")]
    pub full_interval: Duration,
    #[serde(serialize_with = "human_duration")]
    pub pass_timeout: Duration,
    /// Refresh the token once less than this is left before it expires.
    #[serde(serialize_with = "human_duration")]
    pub token_refresh_before: Duration,
}

pub(super) fn read_instagram(s: &mut Settings<'_>) -> InstagramConfig {
    let deleted: String = s.value("instagram.deleted", "keep".to_owned());
    let deleted = match deleted.as_str() {
        "keep" => crate::instagram::DeletedPolicy::Keep,
        "unpublish" => crate::instagram::DeletedPolicy::Unpublish,
        other => {
            s.invalid(
                "instagram.deleted",
                format!("= {other:?} is invalid: use \"keep\" or \"unpublish\""),
            );
            crate::instagram::DeletedPolicy::Keep
        }
    };
    let config = InstagramConfig {
        enabled: s.value("instagram.enabled", false),
        access_token: s.value("instagram.access_token", Secret::default()),
        api_url: s.value(
            "instagram.api_url",
            "https://graph.instagram.com".to_owned(),
        ),
        api_version: s.value("instagram.api_version", "v23.0".to_owned()),
        page_size: s.value("instagram.page_size", 50),
        cdn_hosts: s.value(
            "instagram.cdn_hosts",
            vec!["cdninstagram.com".to_owned(), "fbcdn.net".to_owned()],
        ),
        bucket: s.value("instagram.bucket", String::new()),
        key_prefix: s.value("instagram.key_prefix", "instagram/".to_owned()),
        public_base_url: s.optional("instagram.public_base_url"),
        ghost_url: s.value("instagram.ghost_url", String::new()),
        ghost_admin_key: s.value("instagram.ghost_admin_key", Secret::default()),
        tags: s.value("instagram.tags", vec!["insta".to_owned()]),
        internal_tag: s.value("instagram.internal_tag", "#tend-instagram".to_owned()),
        template: s.optional("instagram.template"),
        deleted,
        interval: s.value("instagram.interval", Duration::from_secs(300)),
        full_interval: s.value("instagram.full_interval", Duration::from_secs(6 * 3600)),
        pass_timeout: s.value("instagram.pass_timeout", Duration::from_secs(1800)),
        token_refresh_before: s.value(
            "instagram.token_refresh_before",
            Duration::from_secs(30 * 86_400),
        ),
    };
    validate_instagram(s, &config);
    config
}

fn validate_instagram(s: &mut Settings<'_>, config: &InstagramConfig) {
    if !config.enabled {
        return;
    }
    for (path, missing, fix) in [
        (
            "instagram.access_token",
            config.access_token.is_empty(),
            "set a long-lived Instagram access token",
        ),
        (
            "instagram.bucket",
            config.bucket.is_empty(),
            "set the S3 bucket of the archive",
        ),
        (
            "instagram.ghost_url",
            config.ghost_url.is_empty(),
            "set the Ghost site URL, such as https://blog.example.com",
        ),
        (
            "instagram.ghost_admin_key",
            config.ghost_admin_key.is_empty(),
            "set the Admin API key of a Ghost custom integration (id:secret)",
        ),
    ] {
        if missing {
            s.invalid(path, format!("is missing: {fix}"));
        }
    }
    let (id, secret) = config
        .ghost_admin_key
        .expose()
        .split_once(':')
        .unwrap_or_default();
    if !config.ghost_admin_key.is_empty()
        && (id.is_empty() || hex::decode(secret).map_or(true, |k| k.is_empty()))
    {
        s.invalid(
            "instagram.ghost_admin_key",
            "is invalid: expected \"id:hexsecret\" as Ghost shows it for a custom integration",
        );
    }
    for (path, url) in [
        ("instagram.api_url", Some(&config.api_url)),
        ("instagram.ghost_url", Some(&config.ghost_url)),
        ("instagram.public_base_url", config.public_base_url.as_ref()),
    ] {
        if let Some(url) = url.filter(|u| !u.is_empty())
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            s.invalid(
                path,
                format!("= {url:?} is invalid: use an http:// or https:// URL"),
            );
        }
    }
    if !(1..=100).contains(&config.page_size) {
        s.invalid(
            "instagram.page_size",
            "must be from 1 to 100, the API's page limit",
        );
    }
    if !config.internal_tag.starts_with('#') {
        s.invalid(
            "instagram.internal_tag",
            "must start with # so Ghost keeps it internal",
        );
    }
    if config.cdn_hosts.is_empty() {
        s.invalid(
            "instagram.cdn_hosts",
            "is empty: list the hosts media may be downloaded from",
        );
    }
}
