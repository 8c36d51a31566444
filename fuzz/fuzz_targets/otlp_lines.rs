//! The OTLP JSON-lines reader of `genscope report`: arbitrary file contents load (bad lines are
//! reported with their line number) and the report over them renders in every format.
#![no_main]

use genscope::analyzer::otlp_file;
use genscope::analyzer::report::{Report, ReportConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.jsonl");
    std::fs::write(&path, data).unwrap();
    let Ok(loaded) = otlp_file::load(&[&path]) else {
        return;
    };
    let lines = data.split(|b| *b == b'\n').count();
    for p in &loaded.problems {
        assert!(p.line >= 1 && p.line <= lines, "{p}");
    }
    let report = Report::compute(&loaded.store, loaded.window(None), &ReportConfig::default());
    let _ = report.to_text();
    let _ = report.to_html();
    // The JSON document reads back as a Report (no non-finite number turned into null).
    let json = serde_json::to_string(&report).expect("the report serializes");
    serde_json::from_str::<Report>(&json)
        .unwrap_or_else(|e| panic!("the JSON report does not read back: {e}\n{json}"));
});
