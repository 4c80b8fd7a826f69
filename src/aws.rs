//! AWS SDK configuration and per-request metrics shared by every AWS client.

use aws_config::BehaviorVersion;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_sdk_ecs::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_ecs::config::{ConfigBag, Intercept, Region, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use prometheus::{IntCounterVec, Opts, Registry};

use crate::config::AwsConfig;
use crate::metrics::register;

#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    #[error(
        "missing AWS region: set AWS_REGION (or aws.region in the config file, or TEND_AWS_REGION), \
         for example AWS_REGION=us-east-1"
    )]
    MissingRegion,
}

/// Loads the shared SDK configuration from the standard AWS environment and
/// credential chain. The region must come from config, the environment or
/// the shared config file: it is never probed from the instance metadata
/// service, whose timeouts would stall startup far from AWS.
pub async fn load(config: &AwsConfig) -> Result<aws_config::SdkConfig, AwsSetupError> {
    let region = RegionProviderChain::first_try(config.region.clone().map(Region::new))
        .or_else(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new())
        .region()
        .await
        .ok_or(AwsSetupError::MissingRegion)?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    if let Some(endpoint) = &config.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    Ok(loader.load().await)
}

/// Counts every HTTP attempt of every AWS call (retries included) by service,
/// operation and outcome, so API cost and throttling show in metrics.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    requests: IntCounterVec,
}

impl RequestMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "tend_aws_requests_total",
                "HTTP requests sent to AWS APIs, retries included, by service, operation and outcome \
                 (ok, throttled, client_error, server_error, transport_error).",
            ),
            &["service", "operation", "outcome"],
        )?;
        Ok(Self {
            requests: register(registry, requests)?,
        })
    }

    /// Requests of `operation` with `outcome` so far.
    pub fn count(&self, service: &str, operation: &str, outcome: &str) -> u64 {
        self.requests
            .with_label_values(&[service, operation, outcome])
            .get()
    }
}

/// Classifies an HTTP status; 429 and 503 are how AWS signals throttling
/// besides the 400 `ThrottlingException` body, which is checked too.
fn outcome(status: Option<u16>, error_code: Option<&str>) -> &'static str {
    match (status, error_code) {
        (None, _) => "transport_error",
        (_, Some(code)) if code.contains("Throttl") || code == "RequestLimitExceeded" => {
            "throttled"
        }
        (Some(429 | 503), _) => "throttled",
        (Some(200..=299), _) => "ok",
        (Some(500..), _) => "server_error",
        (Some(_), _) => "client_error",
    }
}

impl Intercept for RequestMetrics {
    fn name(&self) -> &'static str {
        "tend.RequestMetrics"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|meta| (meta.service().to_owned(), meta.name().to_owned()))
            .unwrap_or_else(|| ("unknown".to_owned(), "unknown".to_owned()));
        let response = context.response();
        let status = response.map(|r| r.status().as_u16());
        let error_code = response
            .and_then(|r| r.headers().get("x-amzn-errortype"))
            .map(|value| {
                // The header reads "Code:namespace..." on some services.
                value.split(':').next().unwrap_or(value)
            });
        let label = outcome(status, error_code);
        self.requests
            .with_label_values(&[&service, &operation, label])
            .inc();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_classified() {
        assert_eq!(outcome(Some(400), Some("ThrottlingException")), "throttled");
        assert_eq!(outcome(Some(429), None), "throttled");
        assert_eq!(outcome(Some(200), None), "ok");
        assert_eq!(outcome(Some(400), Some("ClientException")), "client_error");
        assert_eq!(outcome(Some(500), None), "server_error");
        assert_eq!(outcome(None, None), "transport_error");
    }

    #[tokio::test]
    async fn region_from_config_wins() {
        let config = AwsConfig {
            region: Some("eu-west-3".into()),
            endpoint_url: Some("http://127.0.0.1:1".into()),
            s3_force_path_style: false,
        };
        let sdk = load(&config).await.unwrap();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-3"));
    }
}
