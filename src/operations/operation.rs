//! Explicit operations: a guard per download, health check, fallback, analytics collection,
//! model operation or generation (or a kind of the user's), that becomes one span and one
//! `genscope.operation.duration` measurement when it ends, plus the domain metrics of its kind.
//!
//! The metric is recorded from the guard, not from the span, so trace sampling never removes an
//! operation from counts, success rates or percentiles.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::trace::Status;
use opentelemetry::{KeyValue, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::kind::{GenerationTask, OperationKind};
use crate::instruments::catalog::genai::GenAiAttributes;
use crate::instruments::catalog::generation::GenerationMetrics;
use crate::instruments::catalog::model::{HealthStatus, ModelMetrics};
use crate::instruments::catalog::operation::OperationMetrics;
use crate::instruments::{DefinitionError, MetricsCollector};

/// `error.type` of an operation whose guard was dropped without `succeed()` or `fail()`.
pub const ERROR_DROPPED: &str = "dropped";
/// `error.type` of an operation whose guard was dropped while its thread panicked.
pub const ERROR_PANIC: &str = "panic";
/// `error.type` used when `fail` is given an empty or over-long error type (the given value is
/// kept in the status message).
pub const ERROR_OTHER: &str = "_OTHER";
/// Longest accepted `error.type`, characters.
pub const MAX_ERROR_TYPE_LEN: usize = 128;

/// The `tracing` target of operation spans.
pub const OPERATION_TARGET: &str = "genscope::operation";

/// Starts operations; from [`Genscope::operations`](crate::Genscope::operations). Cheap to
/// clone.
///
/// ```
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let ops = telemetry.operations();
/// let download = ops.download("sdxl-1.0", "hub");
/// download.add_bytes(6_900_000);
/// download.succeed();
/// ops.health_check("sdxl-1.0").fail("timeout", "no answer in 5 s");
/// telemetry.force_flush()?;
/// let stats = telemetry.analyzer().operation_stats(None, genscope::analyzer::Window::all());
/// assert_eq!(stats.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Operations {
    collector: MetricsCollector,
    // Defined on the first finished operation, so a service that never uses operations never
    // sees their metrics in `get_all_metrics`.
    instruments: Arc<OnceLock<Option<Instruments>>>,
}

#[derive(Debug)]
struct Instruments {
    metrics: OperationMetrics,
    model: ModelMetrics,
    generation: GenerationMetrics,
}

impl fmt::Debug for Operations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operations")
            .field("instruments", &self.instruments.get().is_some())
            .finish()
    }
}

impl Operations {
    /// The operations recorder over a collector's instruments.
    pub fn new(collector: &MetricsCollector) -> Self {
        Operations {
            collector: collector.clone(),
            instruments: Arc::default(),
        }
    }

    fn instruments(&self) -> Option<&Instruments> {
        self.instruments
            .get_or_init(|| {
                let make = || -> Result<Instruments, DefinitionError> {
                    Ok(Instruments {
                        metrics: self.collector.operation()?,
                        model: self.collector.model()?,
                        generation: self.collector.generation()?,
                    })
                };
                match make() {
                    Ok(i) => Some(i),
                    Err(e) => {
                        // Only a conflicting user definition of a catalog name can get here;
                        // spans still work, the metrics are off (said once).
                        tracing::warn!(
                            target: "genscope",
                            error = %e,
                            "operation metrics are off: a catalog name is already defined differently"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Starts an operation of any kind. An empty name is recorded as `_unnamed`.
    pub fn start(&self, kind: OperationKind, name: impl Into<String>) -> Operation {
        let name = name.into();
        let span_name = format!("{kind} {name}");
        self.begin(kind, name, span_name, Detail::None)
    }

    /// A download of `model` from `source` (`hub`, `s3`, a host name); add bytes as they
    /// arrive. Also records `genscope.model.download.{io,duration,throughput}`.
    pub fn download(&self, model: &str, source: &str) -> Operation {
        let op = self.begin(
            OperationKind::Download,
            model.to_string(),
            format!("download {model}"),
            Detail::Download {
                source: source.to_string(),
                bytes: std::sync::atomic::AtomicU64::new(0),
            },
        );
        op.set_attribute("genscope.model.name", model.to_string());
        op.set_attribute("genscope.model.source", source.to_string());
        op
    }

    /// A health check of `model`: `succeed()` records it healthy (or what
    /// [`Operation::set_health`] said), `fail` unhealthy. Also records
    /// `genscope.model.health_check.duration`.
    pub fn health_check(&self, model: &str) -> Operation {
        let op = self.begin(
            OperationKind::HealthCheck,
            model.to_string(),
            format!("health_check {model}"),
            Detail::HealthCheck {
                status: std::sync::Mutex::new(None),
            },
        );
        op.set_attribute("genscope.model.name", model.to_string());
        op
    }

    /// A fallback from `model` to `target` for `reason` (a bounded code: `out_of_memory`,
    /// `timeout`). Also counts `genscope.model.fallback.activations` when it ends.
    pub fn fallback_strategy(&self, model: &str, target: &str, reason: &str) -> Operation {
        let op = self.begin(
            OperationKind::FallbackStrategy,
            model.to_string(),
            format!("fallback_strategy {model}"),
            Detail::Fallback {
                target: target.to_string(),
                reason: reason.to_string(),
            },
        );
        op.set_attribute("genscope.model.name", model.to_string());
        op.set_attribute("genscope.fallback.target", target.to_string());
        op.set_attribute("genscope.fallback.reason", reason.to_string());
        op
    }

    /// An analytics collection run named `name`.
    pub fn analytics_collection(&self, name: &str) -> Operation {
        self.start(OperationKind::AnalyticsCollection, name)
    }

    /// A model operation (`load`, `unload`, `warmup`, `compile`) on `model`; the operation name
    /// is `"{operation} {model}"`.
    pub fn model_operation(&self, operation: &str, model: &str) -> Operation {
        let op = self.start(
            OperationKind::ModelOperation,
            format!("{operation} {model}"),
        );
        op.set_attribute("genscope.model.name", model.to_string());
        op.set_attribute("genscope.model.operation", operation.to_string());
        op
    }

    /// An image, video or audio generation task. Also records
    /// `genscope.generation.{requests,duration}` and, with completed steps,
    /// `genscope.generation.steps.rate`.
    pub fn generation(&self, task: GenerationTask) -> Operation {
        let span_name = format!("generate {}", task.model);
        let op = self.begin_generation(task.model_type, task.model, span_name);
        if let Some((w, h)) = task.resolution {
            op.set_attribute("genscope.generation.resolution", format!("{w}x{h}"));
        }
        if let Some(steps) = task.steps {
            op.set_attribute("genscope.generation.steps", i64::from(steps));
        }
        op
    }

    /// An LLM generation following the GenAI span conventions: span name
    /// `{gen_ai.operation.name} {gen_ai.request.model}` and the `gen_ai.*` attributes; tokens
    /// with [`Operation::set_tokens`].
    pub fn llm_generation(&self, genai: &GenAiAttributes) -> Operation {
        let model = genai.request_model_name().unwrap_or("unknown").to_string();
        let op = self.begin_generation("llm".into(), model, genai.span_name());
        for kv in genai.to_key_values() {
            op.set_attribute(kv.key, kv.value);
        }
        op
    }

    /// A generation operation whose metric attributes (model type and model) are also span
    /// attributes.
    fn begin_generation(&self, model_type: String, model: String, span_name: String) -> Operation {
        let attrs = vec![
            KeyValue::new("genscope.model.type", model_type),
            KeyValue::new("gen_ai.request.model", model.clone()),
        ];
        let op = self.begin(
            OperationKind::Generation,
            model,
            span_name,
            Detail::Generation {
                attrs: attrs.clone(),
                steps_done: std::sync::atomic::AtomicU64::new(0),
            },
        );
        for kv in attrs {
            op.set_attribute(kv.key, kv.value);
        }
        op
    }

    fn begin(
        &self,
        kind: OperationKind,
        name: String,
        span_name: String,
        detail: Detail,
    ) -> Operation {
        let name = if name.trim().is_empty() {
            "_unnamed".to_string()
        } else {
            name
        };
        let span = tracing::info_span!(
            target: OPERATION_TARGET,
            "operation",
            otel.name = %span_name,
            genscope.operation.type = %kind,
            genscope.operation.name = %name,
            error.type = tracing::field::Empty,
        );
        Operation {
            span,
            kind,
            name,
            started: Instant::now(),
            detail,
            finished: false,
            ops: self.clone(),
        }
    }
}

#[derive(Debug)]
enum Detail {
    None,
    Download {
        source: String,
        bytes: std::sync::atomic::AtomicU64,
    },
    HealthCheck {
        status: std::sync::Mutex<Option<HealthStatus>>,
    },
    Fallback {
        target: String,
        reason: String,
    },
    Generation {
        attrs: Vec<KeyValue>,
        steps_done: std::sync::atomic::AtomicU64,
    },
}

/// A running operation. End it with [`succeed`](Self::succeed) or [`fail`](Self::fail);
/// dropped without either, it is recorded as failed with `error.type` = [`ERROR_DROPPED`]
/// ([`ERROR_PANIC`] when dropped by a panic).
///
/// Its span is the current span's child; run work inside it with [`in_scope`](Self::in_scope)
/// or `future.instrument(op.span().clone())` so that `#[instrument]` spans nest under it and the
/// resource-usage layer counts their CPU.
///
/// ```
/// use genscope::operations::GenerationTask;
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let op = telemetry.operations().generation(GenerationTask::new("image", "sdxl").steps(4));
/// for _ in 0..4 {
///     op.in_scope(|| { /* one denoising step */ });
///     op.step_completed();
/// }
/// op.update(&[opentelemetry::KeyValue::new("genscope.generation.stage", "decode")]);
/// op.succeed();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Operation {
    span: tracing::Span,
    kind: OperationKind,
    name: String,
    started: Instant,
    detail: Detail,
    finished: bool,
    ops: Operations,
}

impl Operation {
    /// The operation's span.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The kind.
    pub fn kind(&self) -> &OperationKind {
        &self.kind
    }

    /// The name (`genscope.operation.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Runs `f` inside the operation's span.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        self.span.in_scope(f)
    }

    /// Sets a span attribute (the seeds' operation metadata). Metrics keep only type, name,
    /// outcome and error type, so attributes never raise metric cardinality.
    pub fn set_attribute(&self, key: impl Into<opentelemetry::Key>, value: impl Into<Value>) {
        self.span.set_attribute(key, value);
    }

    /// Progress while running (the seeds' `update_task_metrics`): a span event
    /// `genscope.operation.update` carrying `attributes`.
    pub fn update(&self, attributes: &[KeyValue]) {
        self.span
            .add_event("genscope.operation.update", attributes.to_vec());
    }

    /// Bytes received so far, for downloads (ignored for other kinds).
    pub fn add_bytes(&self, bytes: u64) {
        if let Detail::Download { bytes: b, .. } = &self.detail {
            b.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// One completed denoising step or frame, for generations.
    pub fn step_completed(&self) {
        if let Detail::Generation { steps_done, .. } = &self.detail {
            steps_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Token counts (`gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`).
    pub fn set_tokens(&self, input: u64, output: u64) {
        self.set_attribute("gen_ai.usage.input_tokens", input as i64);
        self.set_attribute("gen_ai.usage.output_tokens", output as i64);
    }

    /// Prompt-cache token counts, each when the engine or provider reports it: input tokens
    /// served from a cache (`gen_ai.usage.cache_read.input_tokens`) and written to one
    /// (`gen_ai.usage.cache_creation.input_tokens`; `gen_ai.usage.cache_write.input_tokens` with
    /// `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`). Both are part of the input
    /// tokens of [`Operation::set_tokens`].
    pub fn set_cache_tokens(&self, read: Option<u64>, written: Option<u64>) {
        if let Some(n) = read {
            self.set_attribute("gen_ai.usage.cache_read.input_tokens", n as i64);
        }
        if let Some(n) = written {
            let key = self
                .ops
                .collector
                .genai_conventions()
                .attribute_name("gen_ai.usage.cache_creation.input_tokens");
            self.set_attribute(key, n as i64);
        }
    }

    /// The status a successful health check reports (default healthy).
    pub fn set_health(&self, status: HealthStatus) {
        if let Detail::HealthCheck { status: s } = &self.detail
            && let Ok(mut s) = s.lock()
        {
            *s = Some(status);
        }
    }

    /// Ends the operation as a success.
    pub fn succeed(mut self) {
        self.finish(None);
    }

    /// Ends the operation as a failure: `error_type` is a bounded category (`timeout`,
    /// `out_of_memory`, an error's type name), `message` the human detail for the span status.
    /// An empty or over-long `error_type` becomes [`ERROR_OTHER`], with the given value kept in
    /// the message.
    pub fn fail(mut self, error_type: &str, message: impl fmt::Display) {
        let trimmed = error_type.trim();
        let (error_type, message) =
            if trimmed.is_empty() || trimmed.chars().count() > MAX_ERROR_TYPE_LEN {
                (
                    ERROR_OTHER.to_string(),
                    format!("{message} (invalid error type {error_type:?})"),
                )
            } else {
                (trimmed.to_string(), message.to_string())
            };
        self.finish(Some((error_type, message)));
    }

    fn finish(&mut self, error: Option<(String, String)>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let duration = self.started.elapsed();
        let error_type = error.as_ref().map(|(t, _)| t.as_str());
        let ops = self.ops.instruments();
        match &self.detail {
            Detail::None => {}
            Detail::Download { source, bytes } => {
                let bytes = bytes.load(std::sync::atomic::Ordering::Relaxed);
                self.span
                    .set_attribute("genscope.download.bytes", bytes as i64);
                let secs = duration.as_secs_f64();
                if error_type.is_none() && secs > 0.0 {
                    self.span
                        .set_attribute("genscope.download.throughput", bytes as f64 / secs);
                }
                if let Some(ops) = ops {
                    ops.model
                        .record_download(&self.name, source, bytes, duration, error_type);
                }
            }
            Detail::HealthCheck { status } => {
                let status = match error_type {
                    Some(_) => HealthStatus::Unhealthy,
                    None => status
                        .lock()
                        .ok()
                        .and_then(|s| *s)
                        .unwrap_or(HealthStatus::Healthy),
                };
                self.span
                    .set_attribute("genscope.health_check.status", status.as_str());
                if let Some(ops) = ops {
                    ops.model
                        .record_health_check(&self.name, status, duration, error_type);
                }
            }
            Detail::Fallback { target, reason } => {
                if let Some(ops) = ops {
                    ops.model.record_fallback(&self.name, target, reason);
                }
            }
            Detail::Generation { attrs, steps_done } => {
                let steps = steps_done.load(std::sync::atomic::Ordering::Relaxed);
                if steps > 0 {
                    self.span
                        .set_attribute("genscope.generation.steps.completed", steps as i64);
                }
                if let Some(ops) = ops {
                    ops.generation
                        .record_generation(duration, error_type, attrs);
                    if steps > 0 {
                        ops.generation.record_steps(steps, duration, attrs);
                    }
                }
            }
        }
        if let Some((error_type, message)) = &error {
            self.span.record("error.type", error_type.as_str());
            self.span.set_status(Status::error(message.clone()));
        }
        if let Some(ops) = ops {
            ops.metrics
                .record(self.kind.as_str(), &self.name, duration, error_type);
        }
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        if !self.finished {
            let error = if std::thread::panicking() {
                (ERROR_PANIC, "the thread panicked while the operation ran")
            } else {
                (
                    ERROR_DROPPED,
                    "the operation guard was dropped without succeed() or fail()",
                )
            };
            self.finish(Some((error.0.to_string(), error.1.to_string())));
        }
    }
}
