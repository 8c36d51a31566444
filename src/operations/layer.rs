//! [`ResourceUsageLayer`]: a `tracing_subscriber::Layer` that measures what a span cost the
//! machine and attaches it to the span's OTel counterpart when the span closes.
//!
//! | attribute | type | how |
//! |---|---|---|
//! | `genscope.usage.cpu.time` | double, s | the thread CPU clock read at every enter and exit, summed: right for async tasks that hop threads, and zero for time spent awaiting. Between context switches the clock is read without a system call ([`thread_cpu_time`](super::thread_cpu_time)): a stretch shorter than 1 ms that ran without being switched out counts its wall time, which includes interrupt and hypervisor-steal time in it |
//! | `genscope.usage.process.cpu.utilization` | double, 0..1 | process CPU time over the span's lifetime / (wall time x available CPUs); the interval starts at the usage clock's last sample before the span (at most one clock period, 10 ms by default, earlier) |
//! | `genscope.usage.memory.rss.delta` | int, By | resident set size at close (read directly, or shared with a close at most min(1 ms, 1/64 of the span) earlier) minus at start (the usage clock's last sample) |
//! | `genscope.usage.memory.rss.peak` | int, By | the largest resident size seen in the lifetime: the larger of the two ends, and the process high-water mark (`ru_maxrss`) when it rose during the span. Kernels update the mark lazily, so a spike freed before the span ends can be missed: a lower bound of the true peak |
//! | `genscope.usage.gpu.utilization` | double, 0..1 | average from the [`GpuUsageSource`] over the lifetime |
//! | `genscope.usage.gpu.memory.peak` | int, By | peak from the [`GpuUsageSource`] over the lifetime |
//!
//! An attribute is attached only when it was measured: no GPU source or no GPU sample in the
//! span's lifetime means no GPU attributes, a platform without `/proc/self/statm` means no RSS
//! attributes, and spans shorter than `min_memory_span` (1 ms by default) carry no process
//! utilization or RSS attributes (below the usage clock's resolution). Zero always means
//! "measured zero".
//!
//! **The interval is the exported span's**: from its creation to its last exit, where
//! tracing-opentelemetry ends the OTel span (a span never entered ends at its close). The GPU
//! interval and the `min_memory_span` test use it; RSS and process CPU at the end are read at
//! close (spans closing within min(1 ms, 1/64 of their length) of each other share one read: a
//! request's HTTP and GenAI spans pay one `getrusage` and one `statm` read, not two).
//!
//! **Parents include their children.** A parent span stays entered while a child runs on the
//! same thread (that is how `#[instrument]` futures nest), so its CPU time is inclusive, like its
//! duration. Work a parent hands to another task or thread without entering the parent there is
//! not counted in it.
//!
//! **Layer order.** The layer must be added *before* (inside) the OpenTelemetry layer, so that
//! its `on_close` runs while the OTel span is still open: `registry().with(usage).with(otel)`.
//! [`Genscope::layer`](crate::Genscope::layer) composes them in that order.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt as _;
use tracing::dispatcher::WeakDispatch;
use tracing::span::{Attributes, Id};
use tracing::{Dispatch, Level, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::clock::{ClockSample, UsageClock};
use super::thread_clock::{thread_cpu_ns, thread_cpu_ns_and_wall};

/// `genscope.usage.cpu.time`
pub const CPU_TIME: &str = "genscope.usage.cpu.time";
/// `genscope.usage.process.cpu.utilization`
pub const PROCESS_CPU_UTILIZATION: &str = "genscope.usage.process.cpu.utilization";
/// `genscope.usage.memory.rss.delta`
pub const RSS_DELTA: &str = "genscope.usage.memory.rss.delta";
/// `genscope.usage.memory.rss.peak`
pub const RSS_PEAK: &str = "genscope.usage.memory.rss.peak";
/// `genscope.usage.gpu.utilization`
pub const GPU_UTILIZATION: &str = "genscope.usage.gpu.utilization";
/// `genscope.usage.gpu.memory.peak`
pub const GPU_MEMORY_PEAK: &str = "genscope.usage.gpu.memory.peak";

/// The name of the span field that marks a span as an operation to watch, whatever its level
/// or target (`tracing::info_span!("load", operation = "model_load")`).
pub const OPERATION_FIELD: &str = "operation";

/// GPU usage over an interval, as a GPU sampler saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GpuUsage {
    /// Average utilization in 0..1 over the interval, across the observed devices.
    pub utilization: Option<f64>,
    /// Peak device memory in use over the interval, bytes, summed across devices.
    pub memory_peak_bytes: Option<u64>,
}

/// Where the layer gets GPU usage for a span's lifetime: the GPU sampler's history in a running
/// service, a fake in tests. Called once per watched span at close, on the closing thread, so
/// it must answer from memory (never call the driver).
///
/// ```
/// use std::time::{Duration, Instant};
/// use genscope::operations::{GpuUsage, GpuUsageSource};
/// struct Busy;
/// impl GpuUsageSource for Busy {
///     fn gpu_usage(&self, _from: Instant, _to: Instant) -> Option<GpuUsage> {
///         Some(GpuUsage { utilization: Some(0.9), memory_peak_bytes: Some(20 << 30) })
///     }
/// }
/// let layer = genscope::operations::ResourceUsageLayer::builder().gpu_source(Busy).build();
/// # drop(layer);
/// ```
pub trait GpuUsageSource: Send + Sync + 'static {
    /// Usage between `from` and `to`, or `None` when no GPU sample covers the interval.
    fn gpu_usage(&self, from: Instant, to: Instant) -> Option<GpuUsage>;
}

/// Which spans the layer measures. A span is watched when it has an [`OPERATION_FIELD`] field,
/// or when its level is at least `min_level` and (with targets given) its target starts with
/// one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRule {
    /// Spans at this level or more severe are watched; `None`: none by level.
    pub min_level: Option<Level>,
    /// Target prefixes; empty means every target.
    pub targets: Vec<String>,
    /// Whether spans with an `operation` field, and genscope's operation spans, are watched at
    /// any level.
    pub operation_field: bool,
}

impl Default for WatchRule {
    /// INFO and more severe spans of every target (the spans genscope exports by default), and
    /// every span with an `operation` field.
    fn default() -> Self {
        WatchRule {
            min_level: Some(Level::INFO),
            targets: Vec::new(),
            operation_field: true,
        }
    }
}

impl WatchRule {
    /// Only spans with an `operation` field (genscope's operations are such spans).
    pub fn operations_only() -> Self {
        WatchRule {
            min_level: None,
            targets: Vec::new(),
            operation_field: true,
        }
    }

    /// Watches nothing: the layer becomes a pass-through.
    pub fn nothing() -> Self {
        WatchRule {
            min_level: None,
            targets: Vec::new(),
            operation_field: false,
        }
    }

    /// Whether a span with this metadata is measured.
    pub fn matches(&self, meta: &Metadata<'_>) -> bool {
        if self.operation_field
            && (meta.target() == super::OPERATION_TARGET
                || meta.fields().field(OPERATION_FIELD).is_some())
        {
            return true;
        }
        match self.min_level {
            // Level ordering in `tracing`: ERROR < WARN < INFO; "at least INFO" is `<= INFO`.
            Some(level) if *meta.level() <= level => {
                self.targets.is_empty() || self.targets.iter().any(|t| meta.target().starts_with(t))
            }
            _ => false,
        }
    }
}

/// Default period of the usage clock (see [`ResourceUsageLayerBuilder::clock_interval`]).
pub const DEFAULT_CLOCK_INTERVAL: Duration = Duration::from_millis(10);
/// Default shortest span that gets process CPU utilization and RSS attributes.
pub const DEFAULT_MIN_MEMORY_SPAN: Duration = Duration::from_millis(1);

/// Builder of [`ResourceUsageLayer`].
pub struct ResourceUsageLayerBuilder {
    rule: WatchRule,
    gpu: Option<Arc<dyn GpuUsageSource>>,
    clock_interval: Duration,
    min_memory_span: Duration,
}

impl Default for ResourceUsageLayerBuilder {
    fn default() -> Self {
        ResourceUsageLayerBuilder {
            rule: WatchRule::default(),
            gpu: None,
            clock_interval: DEFAULT_CLOCK_INTERVAL,
            min_memory_span: DEFAULT_MIN_MEMORY_SPAN,
        }
    }
}

impl std::fmt::Debug for ResourceUsageLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceUsageLayerBuilder")
            .field("rule", &self.rule)
            .field("gpu", &self.gpu.is_some())
            .field("clock_interval", &self.clock_interval)
            .field("min_memory_span", &self.min_memory_span)
            .finish()
    }
}

impl ResourceUsageLayerBuilder {
    /// Replaces the whole watch rule.
    pub fn watch(mut self, rule: WatchRule) -> Self {
        self.rule = rule;
        self
    }
    /// Watches spans at `level` or more severe (`None`: none by level).
    pub fn min_level(mut self, level: Option<Level>) -> Self {
        self.rule.min_level = level;
        self
    }
    /// Restricts level-watched spans to targets starting with `prefix` (may be repeated).
    pub fn target(mut self, prefix: impl Into<String>) -> Self {
        self.rule.targets.push(prefix.into());
        self
    }
    /// Whether spans with an `operation` field are always watched (default true).
    pub fn operation_field(mut self, on: bool) -> Self {
        self.rule.operation_field = on;
        self
    }
    /// The GPU usage source (the GPU sampler's history); without one, no GPU attributes.
    pub fn gpu_source(mut self, source: impl GpuUsageSource) -> Self {
        self.gpu = Some(Arc::new(source));
        self
    }
    /// The GPU usage source, shared.
    pub fn gpu_source_shared(mut self, source: Arc<dyn GpuUsageSource>) -> Self {
        self.gpu = Some(source);
        self
    }
    /// Period of the usage clock, whose last sample is a span's starting process CPU and RSS
    /// (default 10 ms; clamped to 1 ms .. 1 s). Shorter is more exact at span start and costs
    /// one `getrusage` + one `statm` read per tick.
    pub fn clock_interval(mut self, interval: Duration) -> Self {
        self.clock_interval = interval.clamp(Duration::from_millis(1), Duration::from_secs(1));
        self
    }
    /// Spans shorter than this (default 1 ms) carry only CPU time (and GPU): their process
    /// CPU utilization and RSS change are below what the clock resolves, and reading them
    /// directly would cost more than the span.
    pub fn min_memory_span(mut self, min: Duration) -> Self {
        self.min_memory_span = min;
        self
    }
    /// Builds the layer and starts its usage clock thread.
    pub fn build(self) -> ResourceUsageLayer {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        ResourceUsageLayer {
            rule: self.rule,
            clock: UsageClock::start(self.clock_interval),
            min_memory_span_ns: self.min_memory_span.as_nanos() as u64,
            thread_clock: thread_cpu_ns().is_some(),
            cpus,
            gpu: self.gpu,
            dispatch: OnceLock::new(),
            live: AtomicUsize::new(0),
        }
    }
}

/// Measures CPU time, process CPU utilization, RSS and GPU usage of watched spans and attaches
/// them as `genscope.usage.*` attributes to their OTel spans (see the module docs for each
/// attribute and the layer order).
///
/// Cost (`BENCHMARKS.md`): for spans it skips, one atomic load per enter, exit and close while
/// no watched span is open (one span lookup per call while one is). For watched spans, a read
/// of the thread CPU clock at every enter and exit (one `Instant::now()` and one memory load
/// while the thread has not been switched out since the last exact read less than 1 ms ago, a
/// system call otherwise), and one `getrusage` plus one
/// `/proc/self/statm` read at close for spans of at least `min_memory_span`; starts read the
/// usage clock's atomics.
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// use tracing_subscriber::layer::SubscriberExt;
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let usage = genscope::operations::ResourceUsageLayer::builder()
///     .min_level(Some(tracing::Level::INFO))
///     .target("my_service")
///     .build();
/// let subscriber = tracing_subscriber::registry()
///     .with(usage) // first: inside the OTel layer
///     .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("my_service")));
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info_span!(target: "my_service", "generate").in_scope(|| { /* work */ });
/// });
/// ```
pub struct ResourceUsageLayer {
    rule: WatchRule,
    clock: Arc<UsageClock>,
    min_memory_span_ns: u64,
    thread_clock: bool,
    cpus: f64,
    gpu: Option<Arc<dyn GpuUsageSource>>,
    dispatch: OnceLock<WeakDispatch>,
    /// Watched spans alive: while zero, enter/exit/close of skipped spans need no lookup.
    live: AtomicUsize,
}

impl std::fmt::Debug for ResourceUsageLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceUsageLayer")
            .field("rule", &self.rule)
            .field("gpu", &self.gpu.is_some())
            .finish_non_exhaustive()
    }
}

impl ResourceUsageLayer {
    /// A builder with the default [`WatchRule`].
    pub fn builder() -> ResourceUsageLayerBuilder {
        ResourceUsageLayerBuilder::default()
    }

    /// The rule deciding which spans are measured.
    pub fn rule(&self) -> &WatchRule {
        &self.rule
    }
}

/// Per-span state, in the span's extensions from creation to close.
struct SpanUsage {
    start_ns: u64,
    start: ClockSample,
    cpu_ns: AtomicU64,
    /// When the span was last exited (clock ns, 0: never): where tracing-opentelemetry ends
    /// the OTel span, so the measured interval is the exported span's.
    last_exit_ns: AtomicU64,
}

thread_local! {
    /// Watched spans entered on this thread: (span id, thread CPU clock at enter).
    static ENTERED: RefCell<Vec<(u64, u64)>> = const { RefCell::new(Vec::new()) };
}

impl<S> tracing_subscriber::Layer<S> for ResourceUsageLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !self.rule.matches(attrs.metadata()) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let usage = SpanUsage {
            start_ns: self.clock.now_ns(),
            start: self.clock.last(),
            cpu_ns: AtomicU64::new(0),
            last_exit_ns: AtomicU64::new(0),
        };
        self.live.fetch_add(1, Ordering::Relaxed);
        span.extensions_mut().insert(usage);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        // Hot path for every span. Skipped spans stop at the atomic load while no watched span
        // is open, at one lookup otherwise.
        if !self.thread_clock || self.live.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        if span.extensions().get::<SpanUsage>().is_none() {
            return;
        }
        if let Some(now) = thread_cpu_ns() {
            ENTERED.with(|e| e.borrow_mut().push((id.into_u64(), now)));
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        // Skipped spans never reach the stack, so an empty stack or another id ends here.
        let raw = id.into_u64();
        let entered = ENTERED.with(|e| {
            let mut e = e.borrow_mut();
            let pos = e.iter().rposition(|(sid, _)| *sid == raw)?;
            Some(e.remove(pos).1)
        });
        let Some(entered_ns) = entered else { return };
        let (Some(now), wall) = thread_cpu_ns_and_wall() else {
            return;
        };
        if let Some(span) = ctx.span(id)
            && let Some(usage) = span.extensions().get::<SpanUsage>()
        {
            usage
                .cpu_ns
                .fetch_add(now.saturating_sub(entered_ns), Ordering::Relaxed);
            // The latest exit wins; two threads exiting at once may leave either's time.
            let at = wall.map_or_else(|| self.clock.now_ns(), |w| self.clock.ns_at(w));
            if at > usage.last_exit_ns.load(Ordering::Relaxed) {
                usage.last_exit_ns.store(at, Ordering::Relaxed);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if self.live.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(span) = ctx.span(&id) else { return };
        let Some(usage) = span.extensions_mut().remove::<SpanUsage>() else {
            return;
        };
        drop(span);
        self.live.fetch_sub(1, Ordering::Relaxed);
        let attributes = self.measure(&usage);
        let attach = |dispatch: &Dispatch| {
            if let Some(cx) = tracing_opentelemetry::get_otel_context(&id, dispatch) {
                cx.span().set_attributes(attributes.into_iter().flatten());
            }
        };
        // The thread's current dispatcher is almost always the one this layer is in: use it
        // by reference when it contains this very layer (no reference count touched), else
        // the one the layer registered with.
        let mut attach = Some(attach);
        tracing::dispatcher::get_default(|current| {
            let ours = current
                .downcast_ref::<ResourceUsageLayer>()
                .is_some_and(|layer| std::ptr::eq(layer, self));
            if ours && let Some(attach) = attach.take() {
                attach(current);
            }
        });
        if let Some(attach) = attach
            && let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade)
        {
            attach(&dispatch);
        }
    }
}

impl ResourceUsageLayer {
    fn measure(&self, usage: &SpanUsage) -> [Option<KeyValue>; 6] {
        let mut kv: [Option<KeyValue>; 6] = Default::default();
        if self.thread_clock {
            let ns = usage.cpu_ns.load(Ordering::Relaxed);
            kv[0] = Some(KeyValue::new(CPU_TIME, ns as f64 / 1e9));
        }
        // The OTel span ends at its last exit (a span never entered: now).
        let end_ns = match usage.last_exit_ns.load(Ordering::Relaxed) {
            0 => self.clock.now_ns(),
            at => at,
        };
        if end_ns.saturating_sub(usage.start_ns) >= self.min_memory_span_ns {
            let start = usage.start;
            let end = self
                .clock
                .read_for_close(end_ns.saturating_sub(usage.start_ns));
            // Over [the clock sample at or before the start, now]: at most one clock period
            // longer than the span.
            let wall_ns = end.at_ns.saturating_sub(start.at_ns) as f64;
            if let (Some(a), Some(b)) = (start.process, end.process)
                && wall_ns > 0.0
            {
                let used = b.cpu_ns.saturating_sub(a.cpu_ns) as f64;
                let utilization = (used / (wall_ns * self.cpus)).clamp(0.0, 1.0);
                kv[1] = Some(KeyValue::new(PROCESS_CPU_UTILIZATION, utilization));
            }
            if let (Some(a), Some(b)) = (start.rss_bytes, end.rss_bytes) {
                kv[2] = Some(KeyValue::new(RSS_DELTA, b as i64 - a as i64));
                let mut peak = a.max(b);
                if let (Some(pa), Some(pb)) = (start.process, end.process)
                    && pb.max_rss_bytes > pa.max_rss_bytes
                {
                    // The high-water mark rose during the span: a size the span reached.
                    peak = peak.max(pb.max_rss_bytes);
                }
                kv[3] = Some(KeyValue::new(RSS_PEAK, peak as i64));
            }
        }
        if let Some(gpu) = self.gpu.as_ref().and_then(|g| {
            g.gpu_usage(
                self.clock.instant(usage.start_ns),
                self.clock.instant(end_ns),
            )
        }) {
            if let Some(u) = gpu.utilization.filter(|u| u.is_finite()) {
                kv[4] = Some(KeyValue::new(GPU_UTILIZATION, u.clamp(0.0, 1.0)));
            }
            if let Some(m) = gpu.memory_peak_bytes {
                kv[5] = Some(KeyValue::new(GPU_MEMORY_PEAK, m as i64));
            }
        }
        kv
    }
}
