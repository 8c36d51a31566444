//! Reads the store once per question and turns per-collection points into the report's sections,
//! its [`Signals`], trends and chart series. Cost: proportional to the series of the metrics read
//! and the collections in the window, never to the number of operations (those are already
//! aggregated into histograms and span slots).

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::findings::Signals;
use super::trend::Trend;
use super::{
    Chart, ChartSeries, GenerationSection, OperationRow, ResourceSection, Stat, TelemetrySection,
};
use crate::analyzer::store::{AnalyzerStore, HistogramSummary, PointValue, Window};
use crate::analyzer::{OperationStats, PercentileSource};

pub(super) struct Extracted {
    pub(super) signals: Signals,
    pub(super) operations: Vec<OperationRow>,
    pub(super) operation_types: Vec<OperationRow>,
    pub(super) generation: GenerationSection,
    pub(super) resources: ResourceSection,
    pub(super) trends: Vec<Trend>,
    pub(super) telemetry: TelemetrySection,
    pub(super) charts: Vec<Chart>,
}

#[derive(Clone, Copy)]
enum Combine {
    Sum,
    Mean,
    Max,
}

type TimeSeries = Vec<(SystemTime, f64)>;

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Gauge values (or up-down counters' running totals) per collection, combined across the
/// matching series.
fn levels(
    store: &AnalyzerStore,
    name: &str,
    filter: &[(&str, &str)],
    window: Window,
    combine: Combine,
) -> TimeSeries {
    let mut by_time: BTreeMap<SystemTime, (f64, usize)> = BTreeMap::new();
    store.each_point(name, filter, window, |_, p| {
        let v = match p.value {
            PointValue::Gauge(v) => v,
            PointValue::Sum { total, .. } => total,
            PointValue::Histogram(_) => return,
        };
        let e = by_time.entry(p.time()).or_insert((
            match combine {
                Combine::Max => f64::NEG_INFINITY,
                _ => 0.0,
            },
            0,
        ));
        match combine {
            Combine::Max => e.0 = e.0.max(v),
            _ => e.0 += v,
        }
        e.1 += 1;
    });
    by_time
        .into_iter()
        .map(|(t, (v, n))| match combine {
            Combine::Mean => (t, v / n as f64),
            _ => (t, v),
        })
        .collect()
}

/// Counter increase per second per collection.
fn rates(store: &AnalyzerStore, name: &str, filter: &[(&str, &str)], window: Window) -> TimeSeries {
    let mut by_time: BTreeMap<SystemTime, f64> = BTreeMap::new();
    store.each_point(name, filter, window, |_, p| {
        if let PointValue::Sum { delta, .. } = p.value {
            *by_time.entry(p.time()).or_default() += delta;
        }
    });
    let mut out = Vec::new();
    let mut previous: Option<SystemTime> = None;
    for (t, v) in by_time {
        if let Some(prev) = previous
            && let Ok(dt) = t.duration_since(prev)
            && dt.as_secs_f64() > 0.0
        {
            out.push((t, v / dt.as_secs_f64()));
        }
        previous = Some(t);
    }
    out
}

/// Histogram merged per collection.
fn histograms(
    store: &AnalyzerStore,
    name: &str,
    filter: &[(&str, &str)],
    window: Window,
) -> Vec<(SystemTime, HistogramSummary)> {
    let mut by_time: BTreeMap<SystemTime, HistogramSummary> = BTreeMap::new();
    store.each_point(name, filter, window, |_, p| {
        if let PointValue::Histogram(h) = &p.value {
            let s = h.summary();
            match by_time.get_mut(&p.time()) {
                Some(acc) => {
                    acc.absorb(&s);
                }
                None => {
                    by_time.insert(p.time(), s);
                }
            }
        }
    });
    by_time.into_iter().collect()
}

/// Sum of a counter's increase over the series that carry `key` (any value) or lack it.
fn sum_with_key(
    store: &AnalyzerStore,
    name: &str,
    key: &str,
    present: bool,
    window: Window,
) -> Option<f64> {
    let mut total = 0.0;
    let mut any = false;
    store.each_point(name, &[], window, |attrs, p| {
        if let PointValue::Sum { delta, .. } = p.value
            && attrs.iter().any(|(k, _)| k == key) == present
        {
            total += delta;
            any = true;
        }
    });
    any.then_some(total)
}

fn values(ts: &TimeSeries) -> Vec<f64> {
    ts.iter().map(|(_, v)| *v).collect()
}

fn quantiles<const N: usize>(h: Option<HistogramSummary>, qs: [f64; N]) -> Option<[f64; N]> {
    let h = h.filter(|h| h.count > 0)?;
    let mut out = [0.0; N];
    for (o, q) in out.iter_mut().zip(qs) {
        *o = h.quantile(q)?;
    }
    Some(out)
}

fn chart_series(name: &str, ts: &TimeSeries) -> ChartSeries {
    ChartSeries {
        name: name.to_string(),
        points: ts.iter().map(|(t, v)| [secs(*t), *v]).collect(),
    }
}

fn trend(metric: &str, unit: &str, ts: &TimeSeries) -> Option<Trend> {
    let pts: Vec<(f64, f64)> = ts.iter().map(|(t, v)| (secs(*t), *v)).collect();
    Trend::fit(metric, unit, &pts)
}

const THROTTLE_REASONS: [&str; 4] = [
    "hw_slowdown",
    "hw_thermal_slowdown",
    "sw_thermal_slowdown",
    "hw_power_brake_slowdown",
];

impl Extracted {
    pub(super) fn from_store(store: &AnalyzerStore, window: Window) -> Extracted {
        let w = window.seconds();
        let mut signals = Signals {
            window_seconds: w,
            ..Default::default()
        };

        // Generation.
        let requests = store.sum("genscope.generation.requests", &[], window);
        let failed = sum_with_key(
            store,
            "genscope.generation.requests",
            "error.type",
            true,
            window,
        );
        let duration_name = if store.kind("genscope.generation.duration").is_some() {
            "genscope.generation.duration"
        } else {
            "gen_ai.server.request.duration"
        };
        let duration = store.histogram(duration_name, &[], window);
        // A serving engine's per-request queue time is the same quantity.
        let queue_wait = store
            .histogram("genscope.generation.queue.wait", &[], window)
            .or_else(|| {
                store.histogram(
                    crate::instruments::catalog::serving::names::REQUEST_QUEUE_DURATION,
                    &[],
                    window,
                )
            });
        let queue = levels(
            store,
            "genscope.generation.queue.size",
            &[],
            window,
            Combine::Sum,
        );
        let active = levels(
            store,
            "genscope.generation.active",
            &[],
            window,
            Combine::Sum,
        );
        // Output tokens: the v1.41.1 histogram, the server-side spelling, or the counter that
        // `gen_ai_latest_experimental` emits instead.
        let output_tokens = store
            .histogram(
                "gen_ai.client.token.usage",
                &[("gen_ai.token.type", "output")],
                window,
            )
            .or_else(|| {
                store.histogram(
                    "gen_ai.server.token.usage",
                    &[("gen_ai.token.type", "output")],
                    window,
                )
            })
            .map(|h| h.sum)
            .or_else(|| store.sum("gen_ai.client.inference.usage.output_tokens", &[], window));
        let generation = GenerationSection {
            requests,
            failed: requests.map(|_| failed.unwrap_or(0.0)),
            requests_per_s: requests.filter(|_| w > 0.0).map(|r| r / w),
            duration_s: quantiles(duration.clone(), [0.5, 0.95, 0.99]),
            ttft_s: quantiles(
                store.histogram("gen_ai.server.time_to_first_token", &[], window),
                [0.5, 0.95],
            ),
            tpot_s: quantiles(
                store.histogram("gen_ai.server.time_per_output_token", &[], window),
                [0.5, 0.95],
            ),
            output_tokens_per_s: output_tokens.filter(|_| w > 0.0).map(|t| t / w),
            queue_size: Stat::of(&values(&queue)),
            queue_wait_s: quantiles(queue_wait.clone(), [0.5, 0.95]),
            active: Stat::of(&values(&active)),
            steps_per_s: store
                .histogram("genscope.generation.steps.rate", &[], window)
                .and_then(|h| h.mean()),
        };
        signals.generation_requests = requests.map(|r| (r, failed.unwrap_or(0.0)));
        signals.queue_size_mean = generation.queue_size.map(|s| s.avg);
        signals.queue_wait_p50 = generation.queue_wait_s.map(|q| q[0]);
        signals.duration_p50_p99 = match (generation.duration_s, &duration) {
            (Some(d), Some(h)) => Some((d[0], d[2], h.count)),
            _ => None,
        };

        signals.error_events = super::events::error_events(store, window);

        // Serving engine.
        use crate::instruments::catalog::serving::names as serving;
        // The usage ratio, or blocks used over total where only those are known (mistral.rs).
        signals.kv_cache_usage_peak = store
            .gauge(serving::KV_CACHE_USAGE, &[], window)
            .map(|g| g.max)
            .or_else(|| {
                let used = store.gauge(serving::KV_CACHE_BLOCKS_USED, &[], window)?;
                let total = store.gauge(serving::KV_CACHE_BLOCKS_TOTAL, &[], window)?;
                (total.max > 0.0).then(|| used.max / total.max)
            });
        signals.preemptions = store.sum(serving::PREEMPTIONS, &[], window);
        signals.prefix_cache = store
            .sum(serving::PREFIX_CACHE_QUERIES, &[], window)
            .map(|q| {
                (
                    q,
                    store
                        .sum(serving::PREFIX_CACHE_HITS, &[], window)
                        .unwrap_or(0.0),
                )
            });
        let prefill = store.histogram(serving::REQUEST_PREFILL_DURATION, &[], window);
        let decode = store.histogram(serving::REQUEST_DECODE_DURATION, &[], window);
        signals.prefill_decode_p50 = match (prefill, decode) {
            (Some(p), Some(d)) => match (p.quantile(0.5), d.quantile(0.5)) {
                (Some(pq), Some(dq)) => Some((pq, dq, p.count.min(d.count))),
                _ => None,
            },
            _ => None,
        };

        // Resources.
        let idle = levels(
            store,
            "system.cpu.utilization",
            &[("cpu.mode", "idle")],
            window,
            Combine::Mean,
        );
        let iowait: BTreeMap<SystemTime, f64> = levels(
            store,
            "system.cpu.utilization",
            &[("cpu.mode", "iowait")],
            window,
            Combine::Mean,
        )
        .into_iter()
        .collect();
        let host_cpu: TimeSeries = idle
            .iter()
            .map(|(t, i)| {
                (
                    *t,
                    (1.0 - i - iowait.get(t).copied().unwrap_or(0.0)).clamp(0.0, 1.0),
                )
            })
            .collect();
        let process_cpu = levels(store, "process.cpu.utilization", &[], window, Combine::Sum);
        let host_memory = levels(
            store,
            "system.memory.utilization",
            &[("system.memory.state", "used")],
            window,
            Combine::Sum,
        );
        let rss = levels(store, "process.memory.usage", &[], window, Combine::Sum);
        let gpu_util = levels(
            store,
            "hw.gpu.utilization",
            &[("hw.gpu.task", "general")],
            window,
            Combine::Mean,
        );
        let gpu_memory = levels(
            store,
            "hw.gpu.memory.utilization",
            &[],
            window,
            Combine::Max,
        );
        let gpu_memory_used = levels(store, "hw.gpu.memory.usage", &[], window, Combine::Sum);
        let gpu_power = levels(
            store,
            "hw.power",
            &[("hw.type", "gpu")],
            window,
            Combine::Sum,
        );
        let gpu_temp = levels(
            store,
            "hw.temperature",
            &[("hw.sensor_location", "gpu")],
            window,
            Combine::Max,
        );
        let resources = ResourceSection {
            host_cpu: Stat::of(&values(&host_cpu)),
            process_cpu: Stat::of(&values(&process_cpu)),
            host_memory: Stat::of(&values(&host_memory)),
            process_memory_bytes: Stat::of(&values(&rss)),
            gpu_utilization: Stat::of(&values(&gpu_util)),
            gpu_memory: Stat::of(&values(&gpu_memory)),
            gpu_power_w: Stat::of(&values(&gpu_power)),
            gpu_temperature_c: Stat::of(&values(&gpu_temp)),
        };
        signals.gpu_utilization_mean = resources.gpu_utilization.map(|s| s.avg);
        signals.gpu_memory_peak = resources.gpu_memory.map(|s| s.peak);
        signals.host_cpu_mean = resources.host_cpu.map(|s| s.avg);
        signals.process_cpu_mean = resources.process_cpu.map(|s| s.avg);
        let mut throttled: BTreeMap<SystemTime, bool> = BTreeMap::new();
        for reason in THROTTLE_REASONS {
            for (t, v) in levels(
                store,
                "genscope.gpu.throttle.active",
                &[("genscope.gpu.throttle.reason", reason)],
                window,
                Combine::Max,
            ) {
                *throttled.entry(t).or_default() |= v >= 1.0;
            }
        }
        if !throttled.is_empty() {
            signals.gpu_throttled_share =
                Some(throttled.values().filter(|v| **v).count() as f64 / throttled.len() as f64);
        }
        let rss_trend = trend("process.memory.usage", "By", &rss);
        signals.rss_trend = rss_trend
            .as_ref()
            .map(|t| (t.slope_per_minute, t.mean, t.significant));

        // Operations.
        let stats = store.operation_stats(None, window);
        let row = |s: &OperationStats| OperationRow {
            kind: s.kind.clone(),
            name: s.name.clone(),
            count: s.count,
            throughput_per_s: if w > 0.0 { s.count as f64 / w } else { 0.0 },
            success_rate: s.success_rate(),
            error_types: s.error_types.clone(),
            p50_s: s.quantile(0.5),
            p95_s: s.quantile(0.95),
            p99_s: s.quantile(0.99),
            cpu_time_s: s.usage.cpu_time.mean(),
            percentiles_from: match s.percentile_source() {
                PercentileSource::SpanSketch => "span_sketch",
                PercentileSource::Histogram => "histogram",
                PercentileSource::None => "none",
            }
            .into(),
        };
        let operations: Vec<OperationRow> = stats.iter().map(row).collect();
        let types = OperationStats::by_type(&stats);
        let operation_types: Vec<OperationRow> = types.iter().map(row).collect();
        if let Some(h) = types.iter().find(|t| t.kind == "health_check") {
            signals.health_checks = Some((h.count, h.failures));
        }
        signals.operation_failures = types
            .into_iter()
            .map(|t| (t.kind, t.count, t.failures))
            .collect();
        signals.download_throughput_p50 = store
            .histogram("genscope.model.download.throughput", &[], window)
            .filter(|h| h.count > 0)
            .and_then(|h| h.quantile(0.5));
        signals.fallbacks = store.sum("genscope.model.fallback.activations", &[], window);

        // Telemetry loss.
        let processed = store.sum("otel.sdk.processor.span.processed", &[], window);
        let dropped = sum_with_key(
            store,
            "otel.sdk.processor.span.processed",
            "error.type",
            true,
            window,
        );
        let failed_spans = sum_with_key(
            store,
            "otel.sdk.exporter.span.exported",
            "error.type",
            true,
            window,
        );
        let failed_points = sum_with_key(
            store,
            "otel.sdk.exporter.metric_data_point.exported",
            "error.type",
            true,
            window,
        );
        let export_failures = match (failed_spans, failed_points) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        let telemetry = TelemetrySection {
            spans_processed: processed.map(|p| p - dropped.unwrap_or(0.0)),
            spans_dropped: dropped,
            export_failures,
        };
        if dropped.is_some() || export_failures.is_some() {
            signals.telemetry_loss = Some((dropped.unwrap_or(0.0), export_failures.unwrap_or(0.0)));
        }

        // Time series for trends and charts.
        let latency = histograms(store, duration_name, &[], window);
        let p = |q: f64| -> TimeSeries {
            latency
                .iter()
                .filter(|(_, h)| h.count > 0)
                .filter_map(|(t, h)| Some((*t, h.quantile(q)?)))
                .collect()
        };
        let (p50, p95) = (p(0.5), p(0.95));
        let throughput = rates(store, "genscope.generation.requests", &[], window);
        let mut trends: Vec<Trend> = [
            trend("genscope.generation.duration p50", "s", &p50),
            trend(
                "genscope.generation.requests rate",
                "{request}/s",
                &throughput,
            ),
            trend("genscope.generation.queue.size", "{request}", &queue),
            trend("host cpu busy", "1", &host_cpu),
            trend("process.cpu.utilization", "1", &process_cpu),
            rss_trend,
            trend("hw.gpu.utilization", "1", &gpu_util),
            trend("hw.gpu.memory.utilization", "1", &gpu_memory),
        ]
        .into_iter()
        .flatten()
        .collect();
        trends.sort_by_key(|t| !t.significant);
        let mut charts = Vec::new();
        let mut chart = |id: &str, title: &str, unit: &str, series: Vec<ChartSeries>| {
            let series: Vec<ChartSeries> = series
                .into_iter()
                .filter(|s| !s.points.is_empty())
                .collect();
            if !series.is_empty() {
                charts.push(Chart {
                    id: id.into(),
                    title: title.into(),
                    unit: unit.into(),
                    series,
                });
            }
        };
        chart(
            "latency",
            "Request duration percentiles",
            "s",
            vec![
                chart_series("p50", &p50),
                chart_series("p95", &p95),
                chart_series("p99", &p(0.99)),
            ],
        );
        chart(
            "throughput",
            "Requests per second",
            "{request}/s",
            vec![chart_series("requests/s", &throughput)],
        );
        chart(
            "queue",
            "Queue size",
            "{request}",
            vec![
                chart_series("queued", &queue),
                chart_series("active", &active),
            ],
        );
        chart(
            "utilization",
            "CPU and GPU utilization",
            "1",
            vec![
                chart_series("host cpu busy", &host_cpu),
                chart_series("process cpu", &process_cpu),
                chart_series("gpu", &gpu_util),
            ],
        );
        let mib = |ts: &TimeSeries| -> TimeSeries {
            ts.iter().map(|(t, v)| (*t, v / 1048576.0)).collect()
        };
        chart(
            "memory",
            "Memory",
            "MiB",
            vec![
                chart_series("process rss", &mib(&rss)),
                chart_series("gpu memory used", &mib(&gpu_memory_used)),
            ],
        );

        Extracted {
            signals,
            operations,
            operation_types,
            generation,
            resources,
            trends,
            telemetry,
            charts,
        }
    }
}
