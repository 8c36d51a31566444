//! The span processor: sampled spans into the bounded [`BatchQueue`]; each batch normalized,
//! handed to the [`ExportObserver`] (the analyzer store) and then to every destination, counting
//! what each delivered or failed.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use tokio::runtime::Handle;

use super::batch_queue::{BatchQueue, Batcher, QueueCounters, QueueSize};
use super::observer::ExportObserver;
use super::sinks::SpanDestination;
use super::span_attributes;
use crate::config::SpanExtras;

#[derive(Debug)]
pub(crate) struct ExportSpanProcessor {
    queue: BatchQueue<SpanData>,
}

struct SpanBatcher {
    destinations: Vec<SpanDestination>,
    observer: Arc<dyn ExportObserver>,
    /// Which of the tracing bridge's location attributes are kept (see [`SpanExtras`]).
    extras: SpanExtras,
    runtime: Handle,
}

impl ExportSpanProcessor {
    pub(crate) fn start(
        destinations: Vec<SpanDestination>,
        observer: Arc<dyn ExportObserver>,
        counters: Arc<QueueCounters>,
        size: QueueSize,
        extras: SpanExtras,
        runtime: Handle,
    ) -> std::io::Result<Self> {
        let batcher = SpanBatcher {
            destinations,
            observer,
            extras,
            runtime,
        };
        Ok(ExportSpanProcessor {
            queue: BatchQueue::start("genscope-span-export", size, counters, batcher)?,
        })
    }
}

impl SpanProcessor for ExportSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    /// Hot path: one non-blocking channel send and one counter increment.
    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.queue.offer(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush(Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.shutdown(timeout)
    }
}

impl Batcher<SpanData> for SpanBatcher {
    fn export(&self, mut spans: Vec<SpanData>) {
        for s in &mut spans {
            span_attributes::normalize(s, self.extras);
        }
        self.observer.observe_spans(&spans);
        if let Some((last, rest)) = self.destinations.split_last() {
            for d in rest {
                d.export(spans.clone(), &self.runtime);
            }
            last.export(spans, &self.runtime);
        }
    }

    fn wait_idle(&self) {
        for d in &self.destinations {
            d.wait_idle(&self.runtime);
        }
    }

    fn shutdown(&self) {
        for d in &self.destinations {
            d.shutdown(Duration::from_secs(1), &self.runtime);
        }
    }
}
