//! The span processor: a bounded queue, one export thread, exact loss accounting.
//!
//! Written here rather than using the SDK's `BatchSpanProcessor` for correctness, not speed: the SDK
//! keeps its drop count private, returns `Ok` from shutdown when the final export failed, and gives
//! no place to hand the analyzer the batch it exports. This processor:
//! - on the application's thread (`on_end`) does one `try_send` and one relaxed counter increment:
//!   never a lock, never I/O, never a wait, whatever the destinations are doing;
//! - on its own thread batches spans (size or delay), hands each batch to the [`ExportObserver`]
//!   (the analyzer store) and then to every destination, counting what each delivered or failed;
//! - on flush/shutdown drains the queue first, so every span ended before the call is exported,
//!   and answers within the caller's timeout even when a destination hangs.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, unbounded};
use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use tokio::runtime::Handle;

use super::accounting::Accounting;
use super::observer::ExportObserver;
use super::sinks::SpanDestination;
use super::span_attributes;
use crate::config::SpanExtras;

enum Control {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// Settings of the processor's queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueSettings {
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
    pub schedule_delay: Duration,
    /// Which of the tracing bridge's location attributes are kept (see [`SpanExtras`]).
    pub extras: SpanExtras,
}

pub(crate) struct ExportSpanProcessor {
    spans: Sender<SpanData>,
    control: Sender<Control>,
    accounting: Arc<Accounting>,
    worker: std::sync::Mutex<Option<JoinHandle<()>>>,
    is_shutdown: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for ExportSpanProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportSpanProcessor")
            .field("queued", &self.spans.len())
            .finish()
    }
}

struct Worker {
    spans: Receiver<SpanData>,
    control: Receiver<Control>,
    destinations: Vec<SpanDestination>,
    observer: Arc<dyn ExportObserver>,
    accounting: Arc<Accounting>,
    settings: QueueSettings,
    runtime: Handle,
}

impl ExportSpanProcessor {
    pub(crate) fn start(
        destinations: Vec<SpanDestination>,
        observer: Arc<dyn ExportObserver>,
        accounting: Arc<Accounting>,
        settings: QueueSettings,
        runtime: Handle,
    ) -> std::io::Result<Self> {
        let (span_tx, span_rx) = bounded(settings.max_queue_size);
        let (control_tx, control_rx) = unbounded();
        accounting
            .span_queue_capacity
            .store(settings.max_queue_size as u64, Relaxed);
        let worker = Worker {
            spans: span_rx,
            control: control_rx,
            destinations,
            observer,
            accounting: Arc::clone(&accounting),
            settings,
            runtime,
        };
        let handle = std::thread::Builder::new()
            .name("genscope-span-export".into())
            .spawn(move || worker.run())?;
        Ok(ExportSpanProcessor {
            spans: span_tx,
            control: control_tx,
            accounting,
            worker: std::sync::Mutex::new(Some(handle)),
            is_shutdown: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn request(
        &self,
        make: impl FnOnce(Sender<()>) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (tx, rx) = bounded(1);
        self.control
            .send(make(tx))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        rx.recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl SpanProcessor for ExportSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    /// Hot path: one non-blocking channel send and one counter increment.
    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.is_shutdown.load(Relaxed) {
            self.accounting
                .spans_dropped_after_shutdown
                .fetch_add(1, Relaxed);
            return;
        }
        match self.spans.try_send(span) {
            Ok(()) => {
                self.accounting.spans_accepted.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                self.accounting
                    .spans_dropped_queue_full
                    .fetch_add(1, Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.accounting
                    .spans_dropped_after_shutdown
                    .fetch_add(1, Relaxed);
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.request(Control::Flush, Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.is_shutdown.swap(true, Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let result = self.request(Control::Shutdown, timeout);
        if result.is_ok()
            && let Some(handle) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            let _ = handle.join();
        }
        result
    }
}

impl Worker {
    fn run(self) {
        let mut batch: Vec<SpanData> = Vec::with_capacity(self.settings.max_export_batch_size);
        let mut deadline = Instant::now() + self.settings.schedule_delay;
        loop {
            crossbeam_channel::select! {
                recv(self.spans) -> msg => match msg {
                    Ok(span) => {
                        batch.push(span);
                        if batch.len() >= self.settings.max_export_batch_size {
                            self.export(&mut batch);
                            deadline = Instant::now() + self.settings.schedule_delay;
                        }
                    }
                    Err(_) => break,
                },
                recv(self.control) -> msg => match msg {
                    Ok(Control::Flush(reply)) => {
                        self.drain(&mut batch);
                        let _ = reply.send(());
                        deadline = Instant::now() + self.settings.schedule_delay;
                    }
                    Ok(Control::Shutdown(reply)) => {
                        self.drain(&mut batch);
                        for d in &self.destinations {
                            d.shutdown(Duration::from_secs(1));
                        }
                        let _ = reply.send(());
                        return;
                    }
                    Err(_) => break,
                },
                default(deadline.saturating_duration_since(Instant::now())) => {
                    self.export(&mut batch);
                    deadline = Instant::now() + self.settings.schedule_delay;
                }
            }
        }
        // Every sender is gone: the processor was dropped without shutdown. Export what is left.
        self.drain(&mut batch);
    }

    /// Exports everything queued now, in batches.
    fn drain(&self, batch: &mut Vec<SpanData>) {
        while let Ok(span) = self.spans.try_recv() {
            batch.push(span);
            if batch.len() >= self.settings.max_export_batch_size {
                self.export(batch);
            }
        }
        self.export(batch);
    }

    fn export(&self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let mut spans = std::mem::replace(
            batch,
            Vec::with_capacity(self.settings.max_export_batch_size),
        );
        let n = spans.len() as u64;
        // Counted as exported once handed over; each destination then counts delivered/failed.
        self.accounting.spans_exported.fetch_add(n, Relaxed);
        for s in &mut spans {
            span_attributes::normalize(s, self.settings.extras);
        }
        self.observer.observe_spans(&spans);
        if let Some((last, rest)) = self.destinations.split_last() {
            for d in rest {
                let _ = d.export(spans.clone(), &self.runtime);
            }
            let _ = last.export(spans, &self.runtime);
        }
    }
}
