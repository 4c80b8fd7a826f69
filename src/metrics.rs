//! The process-wide Prometheus registry. Each module registers its own
//! metric families at startup; `/metrics` encodes them in the text format.

use prometheus::{Encoder, TextEncoder, core::Collector};
pub use prometheus::{GaugeVec, Registry};

/// Registers `collector` and returns it, so a family is created and
/// registered in one expression.
pub fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> prometheus::Result<C> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

/// Encodes every family in the Prometheus text exposition format.
pub fn encode(registry: &Registry) -> Result<String, prometheus::Error> {
    let mut buffer = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buffer)?;
    // The text encoder writes only UTF-8: names are ASCII and label values
    // are Rust strings.
    Ok(String::from_utf8(buffer).unwrap_or_default())
}

/// Registers `tend_build_info{version} 1`, so dashboards can show which
/// version runs.
pub fn register_build_info(registry: &Registry) -> prometheus::Result<()> {
    let info = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "tend_build_info",
            "Always 1; the version label names the running tend.",
        ),
        &["version"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(info))
}

/// Content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Current Unix time in seconds, for timestamp gauges.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or(0.0)
}
