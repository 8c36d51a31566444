//! `tracing` WARN and ERROR events are counted by level and target (`genscope.events`), and a
//! burst of errors makes the report's `error-burst` finding name the target.

mod common;

use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;

mod engine {
    pub fn fail(i: u32) {
        tracing::error!(request = i, "decode step failed");
    }
}

#[test]
fn a_burst_of_errors_is_counted_by_target_and_found() {
    let telemetry = common::offline_builder()
        .metric_export_interval(Duration::from_secs(60))
        .build()
        .expect("genscope");
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..40 {
            engine::fail(i);
        }
        tracing::warn!("a warning");
        tracing::info!("not counted");
    });
    telemetry.force_flush().expect("flush");
    let a = telemetry.analyzer();
    let w = genscope::analyzer::Window::all();
    let target = concat!(module_path!(), "::engine");
    assert_eq!(
        a.sum(
            "genscope.events",
            &[
                ("genscope.event.level", "ERROR"),
                ("genscope.event.target", target)
            ],
            w
        ),
        Some(40.0)
    );
    assert_eq!(
        a.sum("genscope.events", &[("genscope.event.level", "WARN")], w),
        Some(1.0)
    );
    assert_eq!(
        a.sum("genscope.events", &[("genscope.event.level", "INFO")], w),
        None
    );
    let report = a.report(Duration::from_secs(900));
    let burst = report
        .findings
        .iter()
        .find(|f| f.id == "error-burst")
        .unwrap_or_else(|| panic!("{:?}", report.findings));
    assert!(burst.title.contains(target), "{}", burst.title);
    // 40 errors in one 60 s collection: 40 per minute.
    assert!((burst.evidence.observed - 40.0).abs() < 1e-9, "{burst:?}");
    telemetry.shutdown().expect("shutdown");
}
