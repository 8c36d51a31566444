//! Metric definitions from arbitrary names, units, kinds, buckets and attribute keys: validation
//! answers, never panics, and every refusal says why.
#![no_main]

use arbitrary::Arbitrary;
use genscope::instruments::{InstrumentKind, MetricDefinition};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    name: String,
    unit: String,
    kind: u8,
    buckets: Vec<f64>,
    attributes: Vec<String>,
}

fuzz_target!(|input: Input| {
    let kind = match input.kind % 6 {
        0 => InstrumentKind::Counter,
        1 => InstrumentKind::UpDownCounter,
        2 => InstrumentKind::Gauge,
        3 => InstrumentKind::Histogram,
        4 => InstrumentKind::Timer,
        _ => InstrumentKind::Rate,
    };
    let mut d = MetricDefinition::new(input.name, kind).with_unit(input.unit);
    if !input.buckets.is_empty() {
        d = d.with_buckets(input.buckets);
    }
    d = d.with_attributes(input.attributes);
    if let Err(e) = d.validate() {
        assert!(!e.to_string().is_empty());
    }
});
