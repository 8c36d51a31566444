//! Quickstart: `genscope::init()`, one `#[instrument]` function, one metric, then the report.
//!
//! Run: `cargo run --example quickstart`
//!
//! Nothing leaves the process unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set; the in-process
//! analyzer sees every span and metric either way.

use std::time::Duration;

/// Stands for a model call: one span per call, with its arguments as attributes.
#[tracing::instrument]
fn generate(model: &str, steps: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(2 * u64::from(steps)));
    steps * 4 // tokens produced
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = genscope::init()?; // global subscriber + providers, settings from the env
    let tokens = telemetry.metrics().bind_counter("app.tokens", &[])?;
    for i in 0..20 {
        tokens.add(f64::from(generate("tiny-llm", 1 + i % 4)))?;
    }
    telemetry.force_flush()?; // the report reads what was exported: export now
    let window = genscope::analyzer::Window::all();
    let spans = telemetry.analyzer().span_stats(Some("generate"), window);
    let total = telemetry.analyzer().sum("app.tokens", &[], window);
    println!("generate: {} spans, app.tokens = {total:?}", spans.count);
    println!(
        "{}",
        telemetry
            .analyzer()
            .report(Duration::from_secs(60))
            .to_text()
    );
    telemetry.shutdown()?;
    Ok(())
}
