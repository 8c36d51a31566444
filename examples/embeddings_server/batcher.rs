//! Dynamic batching: requests queue their inputs; each worker thread takes what is waiting (up to
//! `max_batch` inputs), embeds it as one batch inside an `embeddings batch` span (entered on the
//! worker thread, so genscope's usage layer gives it the thread's CPU time) and answers each
//! request with its own vectors.
//!
//! CPU attribution: candle runs on the worker thread itself (`RAYON_NUM_THREADS=1`, set by
//! `main` before any thread starts), so a batch span's `genscope.usage.cpu.time` is all the CPU
//! that batch used. The request spans, on the runtime's threads, carry the parsing and the JSON
//! or base64 encoding. The batch spans are roots linked to their requests' spans: summing the
//! root spans counts every thread once.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::trace::TraceContextExt as _;
use tokio::sync::oneshot;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::model::{Embedded, Embedder};

/// One request's inputs and where its answer goes.
pub struct Job {
    pub inputs: Vec<String>,
    pub reply: oneshot::Sender<Result<Embedded, String>>,
    /// The request's span, linked from the batch span.
    pub span: tracing::Span,
    pub queued: Instant,
}

/// Starts `workers` threads that serve `rx` until every sender is gone.
pub fn spawn(
    embedder: Arc<Embedder>,
    workers: usize,
    max_batch: usize,
    rx: crossbeam_channel::Receiver<Job>,
    model: &'static str,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..workers.max(1))
        .map(|i| {
            let (embedder, rx) = (Arc::clone(&embedder), rx.clone());
            std::thread::Builder::new()
                .name(format!("embed-{i}"))
                .spawn(move || work(&embedder, max_batch.max(1), &rx, model))
                .expect("spawn a batch worker")
        })
        .collect()
}

fn work(embedder: &Embedder, max_batch: usize, rx: &crossbeam_channel::Receiver<Job>, model: &str) {
    while let Ok(first) = rx.recv() {
        let mut inputs = first.inputs.len();
        let mut jobs = vec![first];
        while inputs < max_batch {
            match rx.try_recv() {
                Ok(job) => {
                    inputs += job.inputs.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let span = tracing::info_span!(
            "embeddings batch",
            otel.name = %format!("embeddings batch {model}"),
            gen_ai.operation.name = "embeddings",
            gen_ai.request.model = model,
            genscope.batch.inputs = inputs as i64,
            genscope.batch.requests = jobs.len() as i64,
            genscope.batch.queue_wait = jobs[0].queued.elapsed().as_secs_f64(),
        );
        for job in &jobs {
            let cx = job.span.context();
            span.add_link(cx.span().span_context().clone());
        }
        let counts: Vec<usize> = jobs.iter().map(|j| j.inputs.len()).collect();
        let texts: Vec<String> = jobs
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.inputs))
            .collect();
        let result = span.in_scope(|| {
            let mut all = Embedded {
                vectors: Vec::with_capacity(texts.len()),
                tokens: Vec::with_capacity(texts.len()),
            };
            for part in texts.chunks(max_batch) {
                let e = embedder.embed(part)?;
                all.vectors.extend(e.vectors);
                all.tokens.extend(e.tokens);
            }
            Ok::<_, crate::model::ModelError>(all)
        });
        match result {
            Ok(mut all) => {
                for (job, n) in jobs.into_iter().zip(counts).rev() {
                    let at = all.vectors.len() - n;
                    let mine = Embedded {
                        vectors: all.vectors.split_off(at),
                        tokens: all.tokens.split_off(at),
                    };
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                tracing::error!(parent: &span, error.type = "inference_error", "embedding failed: {e}");
                for job in jobs {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
