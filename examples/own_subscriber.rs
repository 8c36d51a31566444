//! A host that owns its `tracing` registry and its own `SdkMeterProvider`: genscope is built
//! with `build()` (not `install()`), adds its `layer()` to the host's registry, and sets no
//! global of its own: no subscriber, no tracer or meter provider, no propagator.
//!
//! Run: `cargo run --example own_subscriber`
//!
//! The host's provider keeps exporting where the host wants; here its reader also hands each
//! collection to genscope's analyzer through the `ExportObserver` seam, so the local report sees
//! the host's metrics beside genscope's own.

use std::sync::Arc;
use std::time::Duration;

use genscope::analyzer::{AnalyzerStore, Window};
use genscope::pipeline::ExportObserver as _;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use tracing_subscriber::layer::SubscriberExt as _;

/// The host's metric exporter: hands every collection to genscope's analyzer store.
struct IntoAnalyzer(Arc<AnalyzerStore>);

impl PushMetricExporter for IntoAnalyzer {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        self.0.observe_metrics(metrics);
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

#[tracing::instrument]
fn handle(request: u32) {
    tracing::info!(request, "handled");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // genscope, without globals.
    let telemetry = genscope::Genscope::builder()
        .default_service_name("host-app")
        .console_logs(false)
        .build()?;

    // The host's own meter provider and its own subscriber; genscope's layer is one of its layers.
    let reader = PeriodicReader::builder(IntoAnalyzer(telemetry.analyzer_handle())).build();
    let host_provider = SdkMeterProvider::builder().with_reader(reader).build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(telemetry.layer());
    // Succeeds: genscope's build() set no global subscriber.
    tracing::subscriber::set_global_default(subscriber)?;

    let requests = host_provider
        .meter("host-app")
        .u64_counter("host.requests")
        .build();
    for i in 0..5 {
        handle(i);
        requests.add(1, &[]);
    }
    host_provider.force_flush()?;
    telemetry.force_flush()?;

    let window = Window::all();
    let spans = telemetry
        .analyzer()
        .span_stats(Some("handle"), window)
        .count;
    let host_requests = telemetry.analyzer().sum("host.requests", &[], window);
    println!("genscope saw {spans} `handle` spans and host.requests = {host_requests:?}");
    assert_eq!(spans, 5);
    assert_eq!(host_requests, Some(5.0));
    host_provider.shutdown()?;
    telemetry.shutdown()?;
    Ok(())
}
