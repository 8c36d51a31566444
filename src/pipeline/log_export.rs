//! The log processor: every log record the tracing bridge emits into the bounded
//! [`BatchQueue`], each batch handed to every destination (OTLP, the console, the file), counting
//! what each delivered or failed. Records carry the trace and span id of the span they were
//! emitted in (the SDK's logger fills them from the active OTel context, which the tracing layer
//! activates on span entry).

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};
use tokio::runtime::Handle;

use super::batch_queue::{BatchQueue, Batcher, QueueCounters, QueueSize};
use super::sinks::{LogDestination, LogItem};

#[derive(Debug)]
pub(crate) struct ExportLogProcessor {
    queue: BatchQueue<LogItem>,
}

struct LogBatcher {
    destinations: Vec<LogDestination>,
    runtime: Handle,
}

impl ExportLogProcessor {
    pub(crate) fn start(
        destinations: Vec<LogDestination>,
        counters: Arc<QueueCounters>,
        size: QueueSize,
        runtime: Handle,
    ) -> std::io::Result<Self> {
        let batcher = LogBatcher {
            destinations,
            runtime,
        };
        Ok(ExportLogProcessor {
            queue: BatchQueue::start("genscope-log-export", size, counters, batcher)?,
        })
    }
}

impl LogProcessor for ExportLogProcessor {
    /// Hot path: one clone of the record, one non-blocking channel send, one counter increment.
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        self.queue.offer((record.clone(), scope.clone()));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush(Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.shutdown(timeout)
    }
}

impl Batcher<LogItem> for LogBatcher {
    fn export(&self, records: Vec<LogItem>) {
        for d in &self.destinations {
            let _ = d.export(&records, &self.runtime);
        }
    }

    fn shutdown(&self) {
        for d in &self.destinations {
            d.shutdown(Duration::from_secs(1));
        }
    }
}
