//! Drop-in for programs that instrument through the `metrics` facade (feature `metrics-facade`).
//!
//! TGI, TEI, LoRAX, mistral.rs and most Rust inference servers record through
//! `metrics::counter!/gauge!/histogram!` into `metrics-exporter-prometheus`. Installing a
//! [`MetricsRecorder`] instead sends the same calls to genscope: OTLP, `/metrics` and the
//! analyzer, with histogram buckets set by name rules ([`Matcher`]) as that exporter sets them.
//!
//! Handles are cached per name and label set in `metrics-util`'s registry (sharded maps, the
//! cache `metrics-exporter-prometheus` uses too), each one a genscope bound handle: after the
//! first call for a key, a `counter!(..).increment(1)` costs the facade's lookup plus
//! genscope's per-thread add.

mod handles;
mod matcher;
mod recorder;

pub use matcher::{DEFAULT_BUCKETS, Matcher};
pub use recorder::{MetricsRecorder, MetricsRecorderBuilder, ucum_unit};
