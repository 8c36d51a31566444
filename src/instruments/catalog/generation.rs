//! Generation-server state under `genscope.generation.*` (no semantic convention covers it; the
//! shapes follow vLLM's and TGI's server metrics): request outcomes and durations, queue size and
//! wait, active generations, batch sizes, and for image/video work steps per second and per-item
//! latency.
//!
//! Attributes: `genscope.model.type` (`llm`, `image`, `video`, `audio`, ...),
//! `gen_ai.request.model`, and `error.type` on failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;

use crate::instruments::{
    DefinitionError, InstrumentKind, Metric, MetricDefinition, MetricsCollector,
};

/// Buckets for whole generations: 50 ms to 10 min.
pub const GENERATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Buckets for queue waits: 1 ms to 5 min.
pub const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Batch-size buckets.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Steps-per-second buckets (diffusion, video frames).
pub const STEPS_RATE_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0,
];
/// Per-item latency buckets (one image, one frame, one clip): 10 ms to 2 min.
pub const ITEM_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

const ATTRS: [&str; 3] = ["genscope.model.type", "gen_ai.request.model", "error.type"];

/// The generation catalog definitions.
pub fn definitions() -> Vec<MetricDefinition> {
    let h = |name: &'static str, unit: &'static str, b: &[f64], d: &'static str| {
        MetricDefinition::new(name, InstrumentKind::Histogram)
            .with_unit(unit)
            .with_buckets(b.iter().copied())
            .with_description(d)
            .with_attributes(ATTRS)
    };
    vec![
        MetricDefinition::counter("genscope.generation.requests")
            .with_unit("{request}")
            .with_description("Finished generation requests, by outcome (error.type on failure)")
            .with_attributes(ATTRS),
        h(
            "genscope.generation.duration",
            "s",
            GENERATION_BUCKETS,
            "Generation duration, from start of work to result",
        ),
        MetricDefinition::up_down_counter("genscope.generation.queue.size")
            .with_unit("{request}")
            .with_description("Requests waiting for a worker")
            .with_attributes(ATTRS),
        h(
            "genscope.generation.queue.wait",
            "s",
            QUEUE_WAIT_BUCKETS,
            "Time requests waited in the queue",
        ),
        MetricDefinition::up_down_counter("genscope.generation.active")
            .with_unit("{request}")
            .with_description("Generations in progress")
            .with_attributes(ATTRS),
        h(
            "genscope.generation.batch.size",
            "{request}",
            BATCH_BUCKETS,
            "Requests per executed batch",
        ),
        MetricDefinition::new("genscope.generation.steps.rate", InstrumentKind::Rate)
            .with_unit("{step}/s")
            .with_buckets(STEPS_RATE_BUCKETS.iter().copied())
            .with_description("Denoising or frame steps per second of a generation")
            .with_attributes(ATTRS),
        h(
            "genscope.generation.item.duration",
            "s",
            ITEM_BUCKETS,
            "Latency per generated item (image, frame, clip)",
        ),
    ]
}

/// Typed recorder for the generation catalog (the seeds' `record_generation`,
/// `update_queue_size`, `update_active_generations`).
///
/// ```
/// use std::time::Duration;
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let generation = telemetry.metrics().generation()?;
/// let attrs = [opentelemetry::KeyValue::new("genscope.model.type", "image")];
/// {
///     let _queued = generation.enqueued(&attrs); // queue.size +1 until dropped
/// }
/// let active = generation.started(&attrs);
/// generation.record_generation(Duration::from_millis(1500), None, &attrs);
/// generation.record_steps(30, Duration::from_millis(1500), &attrs);
/// drop(active);
/// telemetry.force_flush()?;
/// let w = genscope::analyzer::Window::all();
/// assert_eq!(telemetry.analyzer().sum("genscope.generation.requests", &[], w), Some(1.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct GenerationMetrics {
    requests: Metric,
    duration: Metric,
    queue_size: Metric,
    queue_wait: Metric,
    active: Metric,
    batch: Metric,
    steps: Metric,
    item: Metric,
    queue_level: Arc<AtomicI64>,
    active_level: Arc<AtomicI64>,
}

impl GenerationMetrics {
    pub(crate) fn new(c: &MetricsCollector) -> Result<Self, DefinitionError> {
        let d = definitions();
        let m = |i: usize| c.create_metric(d[i].clone());
        Ok(GenerationMetrics {
            requests: m(0)?,
            duration: m(1)?,
            queue_size: m(2)?,
            queue_wait: m(3)?,
            active: m(4)?,
            batch: m(5)?,
            steps: m(6)?,
            item: m(7)?,
            queue_level: Arc::default(),
            active_level: Arc::default(),
        })
    }

    /// One finished generation: duration, and the request counted by outcome
    /// (`error.type` = `error_type` on failure).
    pub fn record_generation(
        &self,
        duration: Duration,
        error_type: Option<&str>,
        attrs: &[KeyValue],
    ) {
        let mut kv = attrs.to_vec();
        if let Some(e) = error_type {
            kv.push(KeyValue::new("error.type", e.to_string()));
        }
        let _ = self.duration.record(duration.as_secs_f64(), &kv);
        let _ = self.requests.record(1.0, &kv);
    }

    /// Queue wait of one request.
    pub fn record_queue_wait(&self, wait: Duration, attrs: &[KeyValue]) {
        let _ = self.queue_wait.record(wait.as_secs_f64(), attrs);
    }

    /// A request entered the queue; the guard takes it out when dropped.
    pub fn enqueued(&self, attrs: &[KeyValue]) -> LevelGuard {
        LevelGuard::new(self.queue_size.clone(), attrs)
    }

    /// A generation started; the guard ends it when dropped (also on panic or cancellation).
    pub fn started(&self, attrs: &[KeyValue]) -> LevelGuard {
        LevelGuard::new(self.active.clone(), attrs)
    }

    /// The seeds' `update_queue_size(size)`: sets the unattributed queue size to an absolute
    /// value (the up-down counter moves by the difference).
    pub fn set_queue_size(&self, size: u64) {
        let prev = self.queue_level.swap(size as i64, Ordering::AcqRel);
        let _ = self.queue_size.record((size as i64 - prev) as f64, &[]);
    }

    /// The seeds' `update_active_generations(count)`, absolute like [`Self::set_queue_size`].
    pub fn set_active(&self, count: u64) {
        let prev = self.active_level.swap(count as i64, Ordering::AcqRel);
        let _ = self.active.record((count as i64 - prev) as f64, &[]);
    }

    /// Size of one executed batch.
    pub fn record_batch(&self, size: u64, attrs: &[KeyValue]) {
        let _ = self.batch.record(size as f64, attrs);
    }

    /// Steps per second of one generation (`steps / duration`); ignored for a zero duration.
    pub fn record_steps(&self, steps: u64, duration: Duration, attrs: &[KeyValue]) {
        let secs = duration.as_secs_f64();
        if secs > 0.0 {
            let _ = self.steps.record(steps as f64 / secs, attrs);
        }
    }

    /// Latency of one generated item (an image of a batch, a video frame).
    pub fn record_item(&self, duration: Duration, attrs: &[KeyValue]) {
        let _ = self.item.record(duration.as_secs_f64(), attrs);
    }
}

/// Holds +1 on an up-down counter until dropped.
#[must_use = "the level drops back when the guard is dropped"]
#[derive(Debug)]
pub struct LevelGuard {
    metric: Metric,
    attrs: Vec<KeyValue>,
}

impl LevelGuard {
    pub(crate) fn new(metric: Metric, attrs: &[KeyValue]) -> Self {
        let _ = metric.record(1.0, attrs);
        LevelGuard {
            metric,
            attrs: attrs.to_vec(),
        }
    }
}

impl Drop for LevelGuard {
    fn drop(&mut self) {
        let _ = self.metric.record(-1.0, &self.attrs);
    }
}

impl MetricsCollector {
    /// The generation-server catalog's typed recorder.
    pub fn generation(&self) -> Result<GenerationMetrics, DefinitionError> {
        GenerationMetrics::new(self)
    }
}
