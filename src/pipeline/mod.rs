//! The telemetry pipeline: providers, the export runtime, destinations, the tee into the analyzer
//! store, loss accounting and bounded shutdown.
//!
//! ```text
//!  #[instrument] span ─► tracing-opentelemetry ─► SdkTracerProvider ─► ExportSpanProcessor
//!                                                  (sampler)            │ bounded queue, 1 thread
//!                                                                       ├─► ExportObserver (store)
//!                                                                       └─► destinations (OTLP/console/file)
//!  Counter::add ─► SdkMeterProvider (1 aggregation) ─► PeriodicReader ─► TeeMetricExporter
//!                                                                       ├─► ExportObserver (store)
//!                                                                       └─► destinations
//!  tracing event ─► appender bridge ─► SdkLoggerProvider ─► ExportLogProcessor
//!  (logs filter)                                          │ bounded queue, 1 thread
//!                                                         └─► destinations (OTLP/console/file)
//! ```
//! The span and log processors share one queue (`batch_queue.rs`).
//! This module knows nothing of the analyzer: it hands batches to an [`ExportObserver`].

mod accounting;
mod batch_queue;
mod delivery;
mod log_export;
mod metric_tee;
mod observer;
mod otlp_exporters;
mod otlp_json;
mod otlp_span_encode;
#[cfg(test)]
mod otlp_span_encode_tests;
mod resource;
mod sinks;
mod span_attributes;
mod span_export;
mod span_grpc;
mod span_http;
mod span_transport;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanExporter as _};

pub(crate) use accounting::{Accounting, SinkCounters};
pub use accounting::{SinkDelivery, TelemetryLoss};
pub use observer::ExportObserver;
pub use otlp_json::{JsonLinesWriter, metrics_to_json_line, spans_to_json_line};

use crate::config::{ConfigError, ExporterKind, SamplerSetting, Settings};
use crate::error::{Error, ShutdownError};
use sinks::{
    LogDestination, LogSink, MetricDestination, MetricSink, Otlp, SpanDestination, SpanSink,
};

/// A flush or shutdown of one signal, run on a helper thread.
type Half = (
    &'static str,
    Box<dyn FnOnce() -> opentelemetry_sdk::error::OTelSdkResult + Send>,
);

/// Running providers and their export machinery.
pub(crate) struct Pipeline {
    pub tracer_provider: SdkTracerProvider,
    pub meter_provider: SdkMeterProvider,
    /// The logs signal's provider; `None` when logs go nowhere.
    pub logger_provider: Option<SdkLoggerProvider>,
    pub accounting: Arc<Accounting>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Flush and shutdown helper threads still running (left behind by a call that timed out).
    helpers_running: Arc<AtomicUsize>,
    /// The deadline of the first bounded call whose helpers were left behind: a later call while
    /// they still run waits no longer than that, so a hung collector costs one bound in all
    /// (`force_flush` then `shutdown` does not wait twice).
    stalled_deadline: Mutex<Option<Instant>>,
}

fn sampler(s: SamplerSetting) -> Sampler {
    match s {
        SamplerSetting::AlwaysOn => Sampler::AlwaysOn,
        SamplerSetting::AlwaysOff => Sampler::AlwaysOff,
        SamplerSetting::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerSetting::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerSetting::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerSetting::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

/// Items of `signal` that failed, and that were sent without an answer, between two accounting
/// snapshots.
fn lost_since(before: &TelemetryLoss, now: &TelemetryLoss, signal: &str) -> (u64, u64) {
    let pick = |l: &TelemetryLoss| match signal {
        "traces" => (l.spans_failed(), l.spans_unanswered()),
        "logs" => (l.logs_failed(), l.logs_unanswered()),
        _ => (l.metric_points_failed(), l.metric_points_unanswered()),
    };
    let ((f0, u0), (f1, u1)) = (pick(before), pick(now));
    (f1.saturating_sub(f0), u1.saturating_sub(u0))
}

impl Pipeline {
    /// The export runtime, for genscope's own servers.
    pub(crate) fn runtime_handle(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }

    pub(crate) fn start(
        settings: &Settings,
        observer: Arc<dyn ExportObserver>,
    ) -> Result<Pipeline, Error> {
        // genscope's own runtime for export I/O: tonic spawns its connection task here, and every
        // export future is driven with this runtime's context. The application's runtime (or lack of
        // one) never matters, and shutting it down never strands an export.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("genscope-export")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let context = runtime.enter();

        let resource = resource::build(settings);
        observer.observe_resource(&resource);

        let file = match &settings.file_export {
            Some(path) => Some(Arc::new(JsonLinesWriter::open_file(path).map_err(
                |source| ConfigError::Path {
                    setting: "GENSCOPE_FILE_EXPORT".into(),
                    path: path.clone(),
                    source,
                },
            )?)),
            None => None,
        };
        let stdout = Arc::new(JsonLinesWriter::stdout());

        let mut span_destinations = Vec::new();
        for kind in &settings.traces_exporters {
            let (sink, component) = match kind {
                ExporterKind::Otlp => {
                    let sink = match otlp_exporters::otlp_span_transport(
                        &settings.traces_otlp,
                        &resource,
                    )? {
                        Some(transport) => SpanSink::Direct(Arc::new(transport)),
                        None => {
                            let mut exporter =
                                otlp_exporters::otlp_span_exporter(&settings.traces_otlp)?;
                            exporter.set_resource(&resource);
                            SpanSink::Otlp(Otlp {
                                exporter: Arc::new(exporter),
                                http: true,
                            })
                        }
                    };
                    (
                        sink,
                        otlp_exporters::span_component_type(settings.traces_otlp.protocol),
                    )
                }
                ExporterKind::Console => (
                    SpanSink::JsonLines {
                        writer: Arc::clone(&stdout),
                        resource: resource.clone(),
                    },
                    "console_span_exporter",
                ),
            };
            span_destinations.push(SpanDestination::new(sink, SinkCounters::new(component)));
        }
        if let Some(file) = &file {
            span_destinations.push(SpanDestination::new(
                SpanSink::JsonLines {
                    writer: Arc::clone(file),
                    resource: resource.clone(),
                },
                SinkCounters::new("otlp_file_span_exporter"),
            ));
        }

        let temporality = otlp_exporters::temporality_of(settings.temporality);
        let mut metric_destinations = Vec::new();
        for kind in &settings.metrics_exporters {
            let (sink, component) = match kind {
                ExporterKind::Otlp => {
                    let exporter =
                        otlp_exporters::otlp_metric_exporter(&settings.metrics_otlp, temporality)?;
                    let http = settings.metrics_otlp.protocol != crate::config::Protocol::Grpc;
                    (
                        MetricSink::Otlp(Otlp {
                            exporter: Arc::new(exporter),
                            http,
                        }),
                        otlp_exporters::metric_component_type(settings.metrics_otlp.protocol),
                    )
                }
                ExporterKind::Console => (
                    MetricSink::JsonLines(Arc::clone(&stdout)),
                    "console_metric_exporter",
                ),
            };
            metric_destinations.push(MetricDestination {
                sink,
                counters: SinkCounters::new(component),
            });
        }
        if let Some(file) = &file {
            metric_destinations.push(MetricDestination {
                sink: MetricSink::JsonLines(Arc::clone(file)),
                counters: SinkCounters::new("otlp_file_metric_exporter"),
            });
        }

        let mut log_destinations = Vec::new();
        for kind in &settings.logs.exporters {
            let (sink, component) = match kind {
                ExporterKind::Otlp => {
                    let mut exporter = otlp_exporters::otlp_log_exporter(&settings.logs.otlp)?;
                    opentelemetry_sdk::logs::LogExporter::set_resource(&mut exporter, &resource);
                    let http = settings.logs.otlp.protocol != crate::config::Protocol::Grpc;
                    (
                        LogSink::Otlp(Otlp {
                            exporter: Arc::new(exporter),
                            http,
                        }),
                        otlp_exporters::log_component_type(settings.logs.otlp.protocol),
                    )
                }
                ExporterKind::Console => (
                    LogSink::JsonLines {
                        writer: Arc::clone(&stdout),
                        resource: resource.clone(),
                    },
                    "console_log_exporter",
                ),
            };
            log_destinations.push(LogDestination {
                sink,
                counters: SinkCounters::new(component),
            });
        }
        if let Some(file) = &file {
            log_destinations.push(LogDestination {
                sink: LogSink::JsonLines {
                    writer: Arc::clone(file),
                    resource: resource.clone(),
                },
                counters: SinkCounters::new("otlp_file_log_exporter"),
            });
        }

        let accounting = Arc::new(Accounting {
            log_sinks: log_destinations
                .iter()
                .map(|d| Arc::clone(&d.counters))
                .collect(),
            span_sinks: span_destinations
                .iter()
                .map(|d| Arc::clone(&d.counters))
                .collect(),
            metric_sinks: metric_destinations
                .iter()
                .map(|d| Arc::clone(&d.counters))
                .collect(),
            ..Accounting::default()
        });

        let processor = span_export::ExportSpanProcessor::start(
            span_destinations,
            Arc::clone(&observer),
            Arc::clone(&accounting.spans),
            batch_queue::QueueSize {
                max_queue_size: settings.span_max_queue_size,
                max_export_batch_size: settings.span_max_export_batch_size,
                schedule_delay: settings.span_schedule_delay,
            },
            settings.span_extras,
            runtime.handle().clone(),
        )
        .map_err(Error::Runtime)?;
        let logger_provider = if log_destinations.is_empty() {
            None
        } else {
            let processor = log_export::ExportLogProcessor::start(
                log_destinations,
                Arc::clone(&accounting.logs),
                batch_queue::QueueSize {
                    max_queue_size: settings.logs.max_queue_size,
                    max_export_batch_size: settings.logs.max_export_batch_size,
                    schedule_delay: settings.logs.schedule_delay,
                },
                runtime.handle().clone(),
            )
            .map_err(Error::Runtime)?;
            Some(
                SdkLoggerProvider::builder()
                    .with_resource(resource.clone())
                    .with_log_processor(processor)
                    .build(),
            )
        };
        let tracer_provider = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(sampler(settings.sampler))
            .with_span_processor(processor)
            .build();

        let tee = metric_tee::TeeMetricExporter {
            destinations: metric_destinations,
            observer,
            accounting: Arc::clone(&accounting),
            temporality,
            runtime: runtime.handle().clone(),
        };
        let reader = PeriodicReader::builder(tee)
            .with_interval(settings.metric_export_interval)
            .build();
        // The SDK's per-instrument series limit, aligned with the analyzer's: attribute sets past
        // it fold into the `otel.metric.overflow=true` series, whatever callers send.
        let series_limit = settings.analyzer_max_series_per_metric;
        let meter_provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader)
            .with_view(move |_: &opentelemetry_sdk::metrics::Instrument| {
                opentelemetry_sdk::metrics::Stream::builder()
                    .with_cardinality_limit(series_limit)
                    .build()
                    .ok()
            })
            .build();
        accounting.register(&opentelemetry::metrics::MeterProvider::meter(
            &meter_provider,
            "genscope",
        ));

        drop(context);
        Ok(Pipeline {
            tracer_provider,
            meter_provider,
            logger_provider,
            accounting,
            runtime: Some(runtime),
            helpers_running: Arc::new(AtomicUsize::new(0)),
            stalled_deadline: Mutex::new(None),
        })
    }

    /// Runs the halves of `op` (one per signal) in parallel on helper threads and waits at most
    /// `timeout`. The SDK's own waits (5 s fixed in the PeriodicReader, exporter timeouts) cannot
    /// stretch this bound: past it, the helpers are left to finish and `Timeout` is returned.
    /// While helpers of an earlier call that timed out still run, the earlier deadline holds: the
    /// bound is spent once per stall, not once per call.
    fn bounded(&self, timeout: Duration, halves: Vec<Half>) -> Result<(), ShutdownError> {
        let mut deadline = Instant::now() + timeout;
        let before = self.accounting.snapshot();
        let mut stalled = self
            .stalled_deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match *stalled {
            Some(earlier) if self.helpers_running.load(Ordering::Acquire) > 0 => {
                deadline = deadline.min(earlier);
            }
            _ => *stalled = None,
        }
        drop(stalled);
        let n = halves.len();
        let (tx, rx) = crossbeam_channel::bounded(n);
        for (signal, half) in halves {
            let (tx, running) = (tx.clone(), Arc::clone(&self.helpers_running));
            running.fetch_add(1, Ordering::AcqRel);
            let spawned = std::thread::Builder::new()
                .name(format!("genscope-flush-{signal}"))
                .spawn(move || {
                    let _ = tx.send((signal, half()));
                    running.fetch_sub(1, Ordering::AcqRel);
                });
            if let Err(e) = spawned {
                self.helpers_running.fetch_sub(1, Ordering::AcqRel);
                // The halves already started finish on their own; the rest never run.
                return Err(ShutdownError::Flush {
                    signal,
                    message: e.to_string(),
                });
            }
        }
        drop(tx);
        let mut first_error = None;
        for _ in 0..n {
            match rx.recv_deadline(deadline) {
                Ok((_, Ok(()))) => {}
                Ok((_, Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown))) => {}
                Ok((_, Err(opentelemetry_sdk::error::OTelSdkError::Timeout(_)))) => {
                    first_error.get_or_insert(ShutdownError::Timeout(timeout));
                }
                Ok((signal, Err(e))) => {
                    // A failure because the destination never answered says so: the SDK's
                    // own message ("Failed to flush") does not.
                    let (failed, unanswered) =
                        lost_since(&before, &self.accounting.snapshot(), signal);
                    first_error.get_or_insert(if unanswered > 0 {
                        ShutdownError::Unanswered {
                            signal,
                            items: unanswered,
                        }
                    } else {
                        ShutdownError::Flush {
                            signal,
                            message: if failed > 0 {
                                format!(
                                    "{failed} items failed to export (refused, unreachable or \
                                     an error answer)"
                                )
                            } else {
                                e.to_string()
                            },
                        }
                    });
                }
                Err(_) => {
                    let mut stalled = self
                        .stalled_deadline
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    stalled.get_or_insert(deadline);
                    return Err(ShutdownError::Timeout(timeout));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// One half per signal running: `traces` and `metrics`, and `logs` when logs go somewhere.
    fn halves(
        &self,
        traces: impl FnOnce(SdkTracerProvider) -> opentelemetry_sdk::error::OTelSdkResult
        + Send
        + 'static,
        metrics: impl FnOnce(SdkMeterProvider) -> opentelemetry_sdk::error::OTelSdkResult
        + Send
        + 'static,
        logs: impl FnOnce(SdkLoggerProvider) -> opentelemetry_sdk::error::OTelSdkResult + Send + 'static,
    ) -> Vec<Half> {
        let (tp, mp) = (self.tracer_provider.clone(), self.meter_provider.clone());
        let mut halves: Vec<Half> = vec![
            ("traces", Box::new(move || traces(tp))),
            ("metrics", Box::new(move || metrics(mp))),
        ];
        if let Some(lp) = self.logger_provider.clone() {
            halves.push(("logs", Box::new(move || logs(lp))));
        }
        halves
    }

    pub(crate) fn force_flush(&self, timeout: Duration) -> Result<(), ShutdownError> {
        let halves = self.halves(
            |tp| tp.force_flush(),
            |mp| mp.force_flush(),
            |lp| lp.force_flush(),
        );
        self.bounded(timeout, halves)
    }

    pub(crate) fn shutdown(&self, timeout: Duration) -> Result<(), ShutdownError> {
        let halves = self.halves(
            move |tp| tp.shutdown_with_timeout(timeout),
            |mp| mp.shutdown(),
            move |lp| lp.shutdown_with_timeout(timeout),
        );
        self.bounded(timeout, halves)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Dropping a runtime blocks; from inside an async context that panics. Never block here.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
