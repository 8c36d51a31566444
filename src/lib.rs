//! # genscope
//!
//! OpenTelemetry instrumentation for services that generate things with AI models (LLM, image,
//! video) and for the model plumbing around them. One builder turns `#[tracing::instrument]` spans
//! and OTel metrics into OTLP (gRPC or HTTP) for any backend, and feeds an in-process analyzer the
//! very same data, so a service can read its own bottlenecks without a collector.
//!
//! ```
//! use genscope::analyzer::Window;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! #[tracing::instrument]
//! fn generate(model: &str, steps: u32) -> usize { steps as usize * 2 }
//!
//! // Embedded default: nothing is sent anywhere, the analyzer still sees everything.
//! let telemetry = genscope::Genscope::builder().ignore_environment().service_name("image-gen").build()?;
//! let subscriber = tracing_subscriber::registry().with(telemetry.layer());
//! tracing::subscriber::with_default(subscriber, || generate("sdxl", 30));
//!
//! telemetry.force_flush()?;
//! let stats = telemetry.analyzer().span_stats(Some("generate"), Window::all());
//! assert_eq!(stats.count, 1);
//! telemetry.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In an application, `genscope::init()?` (or `Genscope::builder()...install()?`) installs the
//! global subscriber instead. Configuration: builder > environment (`OTEL_*`, `GENSCOPE_*`) > TOML
//! file (`GENSCOPE_CONFIG`); see [`config`] and the README's table.
//!
//! Modules follow the data: [`instruments`] (metric definitions, collector, catalogs) and
//! [`operations`] (resource usage on spans, explicit operations) →
//! [`config`] → [`pipeline`] → ([`export`], OTLP, [`analyzer`]).

#![warn(missing_docs)]

pub mod analyzer;
pub mod config;
mod error;
pub mod export;
#[cfg(feature = "metrics-facade")]
pub mod facade;
pub mod instruments;
pub mod observers;
pub mod operations;
pub mod pipeline;
mod telemetry;

pub use error::{Error, ShutdownError};
pub use observers::gpu;
pub use pipeline::{SinkDelivery, TelemetryLoss};
pub use telemetry::{Genscope, GenscopeBuilder, init};
