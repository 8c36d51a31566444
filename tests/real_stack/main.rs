//! Tests against the real programs users run genscope with: the OpenTelemetry Collector on
//! `otel-collector.yaml`, Prometheus 3 (and its promtool), Jaeger v2 and VictoriaMetrics, each
//! built from its published Go module by `tests/peers/build.sh` and found through
//! `GENSCOPE_PEERS`. Without it every test here prints one `SKIP` line and passes; with
//! `GENSCOPE_REQUIRE_PEERS=1` (the README's test command) a missing peer fails.
//!
//! The collector's config uses fixed ports, so these tests run one at a time (the `real-stack`
//! test group in `.config/nextest.toml`).

mod alerts;
mod collector;
mod direct;
mod exemplars;
mod export_rate;
mod faults;
mod fleet;
mod fleet_data;
mod fleet_live;
mod harness;
mod names;
mod otlp;
