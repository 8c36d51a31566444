//! Token-stream timing: wrap the `Stream` (or iterator) of output chunks a generation produces,
//! and the wrapper records what a serving frontend measures by hand today: time to first token,
//! inter-token latency for every token, time per output token, output tokens, the finish reason,
//! and the request's queue / prefill / decode / time-in-model split, into the GenAI server
//! metrics, the serving catalog and the request's span. A stream dropped before its end is
//! recorded as `error.type=cancelled`.
//!
//! Inter-token latency: a chunk of `k` tokens that arrives `gap` after the previous chunk counts
//! `k` latencies of `gap / k` (so their sum is the decode time, as for one token per chunk); the
//! first chunk's tokens are covered by the time to first token.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

// tokio's clock: the std clock outside a paused test runtime, so the timing can be tested exactly.
use tokio::time::Instant;

use futures_util::Stream;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::genai::{GenAiAttributes, GenAiMetrics, ServerTiming};
use super::serving::{RequestPhases, ServingMetrics};

/// What one output chunk carries, as the wrapper needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Chunk<'a> {
    /// Output tokens in the chunk.
    pub tokens: u64,
    /// The finish reason, on the chunk that has one (`stop`, `length`, ...).
    pub finish_reason: Option<&'a str>,
}

/// One request's timing; [`StreamTiming::wrap`] or [`StreamTiming::wrap_iter`] it around the
/// output. Start it when the request arrives.
///
/// ```
/// use std::time::Duration;
/// use genscope::instruments::catalog::genai::{GenAiAttributes, Operation};
/// use genscope::instruments::catalog::stream_timing::{Chunk, StreamTiming};
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let genai = telemetry.metrics().genai()?;
/// let serving = telemetry.metrics().serving("m")?;
/// let attrs = GenAiAttributes::new(Operation::Chat, "self-hosted")?.request_model("m");
/// let mut timing = StreamTiming::start(genai, attrs).serving(serving);
/// timing.input_tokens(12); // the prompt's tokens
/// timing.scheduled(); // left the queue
/// let chunks = vec![(1, None), (2, None), (1, Some("stop"))];
/// let out: Vec<_> = timing
///     .wrap_iter(chunks.into_iter(), |c: &(u64, Option<&'static str>)| Chunk { tokens: c.0, finish_reason: c.1 })
///     .collect();
/// assert_eq!(out.len(), 3);
/// telemetry.force_flush()?;
/// let w = genscope::analyzer::Window::all();
/// let itl = telemetry.analyzer().histogram("genscope.serving.inter_token.duration", &[], w).unwrap();
/// assert_eq!(itl.count, 3); // the 2-token chunk counts 2, the last chunk 1
/// let input = telemetry.analyzer().histogram("gen_ai.client.token.usage", &[("gen_ai.token.type", "input")], w).unwrap();
/// assert_eq!((input.count, input.sum), (1, 12.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct StreamTiming {
    genai: GenAiMetrics,
    /// The request's attributes, built once (empty when the SDK is disabled).
    kv: Vec<KeyValue>,
    serving: Option<ServingMetrics>,
    span: Option<tracing::Span>,
    vllm_attributes: bool,
    arrived: Instant,
    scheduled: Option<Instant>,
    first: Option<Instant>,
    last: Option<Instant>,
    tokens: u64,
    finish_reason: Option<String>,
    done: bool,
}

impl StreamTiming {
    /// Starts timing a request that arrived now.
    pub fn start(genai: GenAiMetrics, attrs: GenAiAttributes) -> Self {
        let kv = if genai.is_disabled() {
            Vec::new()
        } else {
            attrs.to_key_values()
        };
        StreamTiming {
            genai,
            kv,
            serving: None,
            span: None,
            vllm_attributes: false,
            arrived: Instant::now(),
            scheduled: None,
            first: None,
            last: None,
            tokens: 0,
            finish_reason: None,
            done: false,
        }
    }

    /// Also record inter-token latency and the request phases into the serving catalog.
    pub fn serving(mut self, serving: ServingMetrics) -> Self {
        self.serving = Some(serving);
        self
    }

    /// Put the timings on this span (the request's) when the stream ends: `gen_ai.usage.output_tokens`,
    /// `gen_ai.response.finish_reasons`, `genscope.latency.{queue,prefill,decode,model}` (s),
    /// `error.type=cancelled` for a dropped stream.
    pub fn span(mut self, span: tracing::Span) -> Self {
        self.span = Some(span);
        self
    }

    /// Also set vLLM's and SGLang's span spellings of the phases (`gen_ai.latency.time_in_queue`,
    /// `gen_ai.latency.time_to_first_token`, `gen_ai.latency.e2e`,
    /// `gen_ai.latency.time_in_model_prefill`, `gen_ai.latency.time_in_model_decode`), which no
    /// registry defines yet; off by default.
    pub fn vllm_latency_attributes(mut self, on: bool) -> Self {
        self.vllm_attributes = on;
        self
    }

    /// The prompt's token count, into the token usage metric (`input`) with the request's
    /// attributes, which this timing has already built (cheaper than
    /// [`GenAiMetrics::record_tokens`] with the same attributes).
    pub fn input_tokens(&mut self, tokens: u64) {
        self.genai
            .record_tokens_kv(&mut self.kv, Some(tokens), None);
    }

    /// The request left the queue and was first scheduled (its prefill starts).
    pub fn scheduled(&mut self) {
        self.scheduled.get_or_insert_with(Instant::now);
    }

    fn observe(&mut self, chunk: Chunk<'_>) {
        if self.genai.is_disabled() {
            return;
        }
        if let Some(r) = chunk.finish_reason {
            self.finish_reason = Some(r.to_string());
        }
        // A chunk without tokens (a role-only first chunk, a usage chunk) times nothing.
        if chunk.tokens == 0 {
            return;
        }
        let now = Instant::now();
        if let (Some(last), Some(s)) = (self.last, &self.serving) {
            let k = chunk.tokens.min(u64::from(u32::MAX)) as u32;
            let gap = now.duration_since(last) / k;
            for _ in 0..k {
                s.record_inter_token(gap);
            }
        }
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.tokens += chunk.tokens;
    }

    fn finish(&mut self, cancelled: bool) {
        if self.done || self.genai.is_disabled() {
            return;
        }
        self.done = true;
        let end = self.last.unwrap_or_else(Instant::now);
        let duration = end.duration_since(self.arrived);
        let ttft = self.first.map(|f| f.duration_since(self.arrived));
        let error = cancelled.then_some("cancelled");
        if !cancelled {
            self.genai
                .record_tokens_kv(&mut self.kv, None, Some(self.tokens));
        }
        self.genai.record_server_request_kv(
            &mut self.kv,
            ServerTiming {
                duration: if cancelled {
                    self.arrived.elapsed()
                } else {
                    duration
                },
                time_to_first_token: ttft,
                output_tokens: Some(self.tokens),
            },
            error,
        );
        let start = self.scheduled.unwrap_or(self.arrived);
        let phases = RequestPhases {
            queue: start.duration_since(self.arrived),
            prefill: self
                .first
                .map_or(Duration::ZERO, |f| f.duration_since(start)),
            decode: match (self.first, self.last) {
                (Some(f), Some(l)) => l.duration_since(f),
                _ => Duration::ZERO,
            },
        };
        if let (Some(s), false) = (&self.serving, cancelled) {
            s.record_phases(phases);
        }
        if let Some(span) = &self.span {
            let mut kv = Vec::with_capacity(11);
            kv.push(KeyValue::new(
                "gen_ai.usage.output_tokens",
                self.tokens as i64,
            ));
            if let Some(r) = &self.finish_reason {
                kv.push(KeyValue::new(
                    "gen_ai.response.finish_reasons",
                    Value::Array(Array::String(vec![StringValue::from(r.clone())])),
                ));
            }
            if cancelled {
                kv.push(KeyValue::new("error.type", "cancelled"));
            } else {
                let model = phases.prefill + phases.decode;
                kv.extend([
                    KeyValue::new("genscope.latency.queue", phases.queue.as_secs_f64()),
                    KeyValue::new("genscope.latency.prefill", phases.prefill.as_secs_f64()),
                    KeyValue::new("genscope.latency.decode", phases.decode.as_secs_f64()),
                    KeyValue::new("genscope.latency.model", model.as_secs_f64()),
                ]);
                if self.vllm_attributes {
                    kv.extend([
                        KeyValue::new("gen_ai.latency.time_in_queue", phases.queue.as_secs_f64()),
                        KeyValue::new(
                            "gen_ai.latency.time_to_first_token",
                            ttft.unwrap_or_default().as_secs_f64(),
                        ),
                        KeyValue::new("gen_ai.latency.e2e", duration.as_secs_f64()),
                        KeyValue::new(
                            "gen_ai.latency.time_in_model_prefill",
                            phases.prefill.as_secs_f64(),
                        ),
                        KeyValue::new(
                            "gen_ai.latency.time_in_model_decode",
                            phases.decode.as_secs_f64(),
                        ),
                    ]);
                }
            }
            set_span_attributes(span, kv);
        }
    }

    /// Wraps a stream of output chunks; `chunk` says what each item carries.
    pub fn wrap<S, F>(self, stream: S, chunk: F) -> TimedStream<S, F>
    where
        S: Stream,
        F: FnMut(&S::Item) -> Chunk<'_>,
    {
        TimedStream {
            inner: Box::pin(stream),
            chunk,
            timing: self,
        }
    }

    /// Wraps an iterator of output chunks (a blocking decoder loop).
    pub fn wrap_iter<I, F>(self, iter: I, chunk: F) -> TimedIter<I, F>
    where
        I: Iterator,
        F: FnMut(&I::Item) -> Chunk<'_>,
    {
        TimedIter {
            inner: iter,
            chunk,
            timing: self,
        }
    }
}

/// A stream whose chunks are timed ([`StreamTiming::wrap`]).
pub struct TimedStream<S, F> {
    inner: Pin<Box<S>>,
    chunk: F,
    timing: StreamTiming,
}

impl<S, F> std::fmt::Debug for TimedStream<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedStream")
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

impl<S, F> Stream for TimedStream<S, F>
where
    S: Stream,
    F: FnMut(&S::Item) -> Chunk<'_> + Unpin,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(item)) => {
                let c = (this.chunk)(&item);
                this.timing.observe(c);
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                this.timing.finish(false);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S, F> Drop for TimedStream<S, F> {
    fn drop(&mut self) {
        self.timing.finish(true);
    }
}

/// An iterator whose chunks are timed ([`StreamTiming::wrap_iter`]).
pub struct TimedIter<I, F> {
    inner: I,
    chunk: F,
    timing: StreamTiming,
}

impl<I, F> std::fmt::Debug for TimedIter<I, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedIter")
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

impl<I, F> Iterator for TimedIter<I, F>
where
    I: Iterator,
    F: FnMut(&I::Item) -> Chunk<'_>,
{
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        match self.inner.next() {
            Some(item) => {
                let c = (self.chunk)(&item);
                self.timing.observe(c);
                Some(item)
            }
            None => {
                self.timing.finish(false);
                None
            }
        }
    }
}

impl<I, F> Drop for TimedIter<I, F> {
    fn drop(&mut self) {
        self.timing.finish(true);
    }
}

/// Sets `kv` on `span`'s OTel span in one call: one span lookup and one lock for all of them
/// (`OpenTelemetrySpanExt::set_attribute` looks the span up and locks it once per attribute).
/// `context()` starts the OTel span if it was not yet; without an OTel layer it is a no-op span.
fn set_span_attributes(span: &tracing::Span, kv: Vec<KeyValue>) {
    use opentelemetry::trace::TraceContextExt as _;
    span.context().span().set_attributes(kv);
}
