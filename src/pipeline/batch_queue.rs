//! The bounded export queue behind the span and log processors: one export thread, batches by
//! size or delay, exact counts of what was accepted, dropped and handed on.
//!
//! Written here rather than using the SDK's batch processors for correctness, not speed: the SDK
//! keeps its drop counts private, returns `Ok` from a shutdown whose final export failed, and gives
//! no place to hand the analyzer the batch it exports. This queue:
//! - on the application's thread ([`BatchQueue::offer`]) does one `try_send` and one relaxed
//!   counter increment: never a lock, never I/O, never a wait, whatever the destinations do;
//! - wakes its thread only when a batch is full (or at the schedule delay): the thread never
//!   blocks in a receive on the items, so a send finds no waiter to wake. (A receiver parked on
//!   the channel made every span a futex wake-up and a context switch: at 1,000 requests/s of
//!   two spans each, more CPU than the export itself.)
//! - on its own thread batches items (size or delay) and hands each batch to its [`Batcher`];
//! - on flush/shutdown drains the queue first, so every item offered before the call is handed
//!   on, and answers within the caller's timeout even when a destination hangs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, bounded, unbounded};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};

/// Exact counts of one queue. Queued = accepted - exported.
#[derive(Debug, Default)]
pub(crate) struct QueueCounters {
    /// Items accepted into the queue.
    pub accepted: AtomicU64,
    /// Items dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Items offered after shutdown began.
    pub dropped_after_shutdown: AtomicU64,
    /// Capacity of the queue.
    pub capacity: AtomicU64,
    /// Items handed to the batcher.
    pub exported: AtomicU64,
}

/// What one export thread does with a batch.
pub(crate) trait Batcher<T>: Send + 'static {
    /// Hands `batch` to the destinations (on the export thread); they may still be sending it
    /// when this returns.
    fn export(&self, batch: Vec<T>);
    /// Waits until every batch handed on has ended at its destinations (flush and shutdown).
    fn wait_idle(&self) {}
    /// Shuts the destinations down after the final drain.
    fn shutdown(&self);
}

/// Sizes and delay of one queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueSize {
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
    pub schedule_delay: Duration,
}

enum Control {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

pub(crate) struct BatchQueue<T> {
    items: Sender<T>,
    control: Sender<Control>,
    /// A full batch is waiting (one wake-up per batch, not per item).
    wake: Sender<()>,
    wake_pending: Arc<AtomicBool>,
    batch_size: usize,
    counters: Arc<QueueCounters>,
    worker: std::sync::Mutex<Option<JoinHandle<()>>>,
    is_shutdown: AtomicBool,
}

impl<T> std::fmt::Debug for BatchQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchQueue")
            .field("queued", &self.items.len())
            .finish()
    }
}

struct Worker<T, B> {
    items: Receiver<T>,
    control: Receiver<Control>,
    wake: Receiver<()>,
    wake_pending: Arc<AtomicBool>,
    batcher: B,
    counters: Arc<QueueCounters>,
    size: QueueSize,
}

impl<T: Send + 'static> BatchQueue<T> {
    /// Starts the export thread `thread_name`.
    pub(crate) fn start(
        thread_name: &str,
        size: QueueSize,
        counters: Arc<QueueCounters>,
        batcher: impl Batcher<T>,
    ) -> std::io::Result<Self> {
        let (item_tx, item_rx) = bounded(size.max_queue_size);
        let (control_tx, control_rx) = unbounded();
        let (wake_tx, wake_rx) = bounded(1);
        let wake_pending = Arc::new(AtomicBool::new(false));
        counters.capacity.store(size.max_queue_size as u64, Relaxed);
        let worker = Worker {
            items: item_rx,
            control: control_rx,
            wake: wake_rx,
            wake_pending: Arc::clone(&wake_pending),
            batcher,
            counters: Arc::clone(&counters),
            size,
        };
        let handle = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || worker.run())?;
        Ok(BatchQueue {
            items: item_tx,
            control: control_tx,
            wake: wake_tx,
            wake_pending,
            batch_size: size.max_export_batch_size,
            counters,
            worker: std::sync::Mutex::new(Some(handle)),
            is_shutdown: AtomicBool::new(false),
        })
    }

    /// Hot path: one non-blocking channel send and one counter increment (and, once per full
    /// batch, one wake-up of the export thread).
    pub(crate) fn offer(&self, item: T) {
        if self.is_shutdown.load(Relaxed) {
            self.counters.dropped_after_shutdown.fetch_add(1, Relaxed);
            return;
        }
        match self.items.try_send(item) {
            Ok(()) => {
                if self.items.len() >= self.batch_size && !self.wake_pending.swap(true, Relaxed) {
                    let _ = self.wake.try_send(());
                }
                self.counters.accepted.fetch_add(1, Relaxed)
            }
            Err(TrySendError::Full(_)) => self.counters.dropped_queue_full.fetch_add(1, Relaxed),
            Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped_after_shutdown.fetch_add(1, Relaxed)
            }
        };
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

    /// Hands on everything queued now; waits at most `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) -> OTelSdkResult {
        self.request(Control::Flush, timeout)
    }

    /// Drains, shuts the destinations down and stops the thread; waits at most `timeout`.
    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
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

impl<T, B: Batcher<T>> Worker<T, B> {
    fn run(self) {
        let mut batch: Vec<T> = Vec::with_capacity(self.size.max_export_batch_size);
        let mut deadline = Instant::now() + self.size.schedule_delay;
        loop {
            // Take what is queued, a batch at a time; never wait on the items themselves.
            loop {
                match self.items.try_recv() {
                    Ok(item) => {
                        batch.push(item);
                        if batch.len() >= self.size.max_export_batch_size {
                            self.export(&mut batch);
                            deadline = Instant::now() + self.size.schedule_delay;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    // Every sender is gone: the queue was dropped without shutdown.
                    Err(TryRecvError::Disconnected) => {
                        self.drain(&mut batch);
                        return;
                    }
                }
            }
            if Instant::now() >= deadline {
                self.export(&mut batch);
                deadline = Instant::now() + self.size.schedule_delay;
            }
            crossbeam_channel::select! {
                recv(self.wake) -> _ => {
                    // Cleared before the next take: a batch filling from here wakes again.
                    self.wake_pending.store(false, Relaxed);
                }
                recv(self.control) -> msg => match msg {
                    Ok(Control::Flush(reply)) => {
                        self.drain(&mut batch);
                        let _ = reply.send(());
                        deadline = Instant::now() + self.size.schedule_delay;
                    }
                    Ok(Control::Shutdown(reply)) => {
                        self.drain(&mut batch);
                        self.batcher.shutdown();
                        let _ = reply.send(());
                        return;
                    }
                    Err(_) => {
                        self.drain(&mut batch);
                        return;
                    }
                },
                default(deadline.saturating_duration_since(Instant::now())) => {}
            }
        }
    }

    /// Exports everything queued now, in batches, and waits until the destinations have it.
    fn drain(&self, batch: &mut Vec<T>) {
        while let Ok(item) = self.items.try_recv() {
            batch.push(item);
            if batch.len() >= self.size.max_export_batch_size {
                self.export(batch);
            }
        }
        self.export(batch);
        self.batcher.wait_idle();
    }

    fn export(&self, batch: &mut Vec<T>) {
        if batch.is_empty() {
            return;
        }
        let items = std::mem::replace(batch, Vec::with_capacity(self.size.max_export_batch_size));
        // Counted as exported once handed over; each destination then counts delivered/failed.
        self.counters
            .exported
            .fetch_add(items.len() as u64, Relaxed);
        self.batcher.export(items);
    }
}
