//! Token-stream timing on tokio's paused clock (exact, no wall-clock dependence): chunks with
//! known gaps give exact TTFT, inter-token and phase values in the right buckets, a chunk of k
//! tokens counts k inter-token latencies, and a stream dropped early is recorded as cancelled.

mod common;

use std::time::Duration;

use futures_util::StreamExt;
use genscope::analyzer::Window;

use genscope::instruments::catalog::genai::{GenAiAttributes, Operation};
use genscope::instruments::catalog::stream_timing::{Chunk, StreamTiming};

/// (wait before the chunk, tokens in it, finish reason)
type Step = (u64, u64, Option<&'static str>);

const STEPS: [Step; 6] = [
    (110, 0, None), // a role-only first chunk: times nothing
    (0, 1, None),   // first token: TTFT 110 ms
    (60, 1, None),  // one 60 ms latency
    (240, 3, None), // three 80 ms latencies
    (22, 1, None),  // one 22 ms latency
    (5, 0, Some("stop")),
];

fn telemetry(file: &std::path::Path) -> genscope::Genscope {
    common::offline_builder()
        .file_export(file)
        .build()
        .expect("genscope")
}

fn chunks(steps: &'static [Step]) -> impl futures_util::Stream<Item = Step> {
    futures_util::stream::iter(steps.iter().copied()).then(|step| async move {
        tokio::time::sleep(Duration::from_millis(step.0)).await;
        step
    })
}

fn bucket_of(bounds: &[f64], counts: &[u64]) -> Vec<(String, u64)> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| {
            let le = bounds.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            (le, *n)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn known_gaps_give_exact_ttft_inter_token_and_phases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("out.jsonl");
    let t = telemetry(&file);
    let attrs = GenAiAttributes::new(Operation::Chat, "self-hosted")
        .unwrap()
        .request_model("sim");
    let span = {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(t.layer());
        let dispatch = tracing::Dispatch::new(subscriber);
        let _guard = tracing::dispatcher::set_default(&dispatch);
        let span = tracing::info_span!("chat sim");
        let mut timing = StreamTiming::start(t.metrics().genai().unwrap(), attrs)
            .serving(t.metrics().serving("sim").unwrap())
            .span(span.clone());
        tokio::time::sleep(Duration::from_millis(20)).await; // queued 20 ms
        timing.scheduled();
        let got: Vec<Step> = timing
            .wrap(chunks(&STEPS), |s: &Step| Chunk {
                tokens: s.1,
                finish_reason: s.2,
            })
            .collect()
            .await;
        assert_eq!(got.len(), STEPS.len());
        span
    };
    drop(span);
    t.force_flush().expect("flush");
    let a = t.analyzer();
    let w = Window::all();

    let ttft = a
        .histogram("gen_ai.server.time_to_first_token", &[], w)
        .unwrap();
    assert_eq!(ttft.count, 1);
    assert!(
        (ttft.sum - 0.13).abs() < 1e-9,
        "TTFT = 20 ms queue + 110 ms: {}",
        ttft.sum
    );
    assert_eq!(
        bucket_of(&ttft.bounds, &ttft.counts),
        [("0.25".to_string(), 1)]
    );

    let itl = a
        .histogram("genscope.serving.inter_token.duration", &[], w)
        .unwrap();
    assert_eq!(itl.count, 5, "1 + 3 + 1 latencies");
    assert!(
        (itl.sum - (0.06 + 0.24 + 0.022)).abs() < 1e-9,
        "{}",
        itl.sum
    );
    assert_eq!(
        bucket_of(&itl.bounds, &itl.counts),
        [
            ("0.025".to_string(), 1),
            ("0.075".to_string(), 1),
            ("0.1".to_string(), 3)
        ]
    );

    // TPOT = (duration - TTFT) / (tokens - 1) = (0.452 - 0.13) / 5; the duration runs to the
    // last token (the finish-only chunk after it adds nothing).
    let tpot = a
        .histogram("gen_ai.server.time_per_output_token", &[], w)
        .unwrap();
    assert!((tpot.sum - 0.322 / 5.0).abs() < 1e-9, "{}", tpot.sum);
    let tokens = a
        .histogram(
            "gen_ai.client.token.usage",
            &[("gen_ai.token.type", "output")],
            w,
        )
        .unwrap();
    assert_eq!(tokens.sum, 6.0);
    for (name, secs) in [
        ("genscope.serving.request.queue.duration", 0.02),
        ("genscope.serving.request.prefill.duration", 0.11),
        ("genscope.serving.request.decode.duration", 0.322),
    ] {
        let h = a.histogram(name, &[], w).unwrap();
        assert!((h.sum - secs).abs() < 1e-9, "{name}: {}", h.sum);
    }

    t.shutdown().expect("shutdown");
    let text = std::fs::read_to_string(&file).expect("file");
    for want in [
        "\"gen_ai.usage.output_tokens\",\"value\":{\"intValue\":\"6\"}",
        "\"gen_ai.response.finish_reasons\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"stop\"}]}}",
        "\"genscope.latency.queue\",\"value\":{\"doubleValue\":0.02}",
        "\"genscope.latency.prefill\",\"value\":{\"doubleValue\":0.11}",
        "\"genscope.latency.decode\",\"value\":{\"doubleValue\":0.322}",
    ] {
        assert!(text.contains(want), "{want} not in {text}");
    }
    assert!(
        !text.contains("gen_ai.latency."),
        "vLLM spellings are off by default"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_dropped_early_is_cancelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = telemetry(&dir.path().join("out.jsonl"));
    let attrs = GenAiAttributes::new(Operation::Chat, "self-hosted").unwrap();
    let timing = StreamTiming::start(t.metrics().genai().unwrap(), attrs);
    let mut stream = Box::pin(timing.wrap(chunks(&STEPS), |s: &Step| Chunk {
        tokens: s.1,
        finish_reason: s.2,
    }));
    for _ in 0..3 {
        stream.next().await.expect("chunk");
    }
    drop(stream); // the client went away
    t.force_flush().expect("flush");
    let a = t.analyzer();
    let w = Window::all();
    let cancelled = a
        .histogram(
            "gen_ai.server.request.duration",
            &[("error.type", "cancelled")],
            w,
        )
        .unwrap();
    assert_eq!(cancelled.count, 1);
    assert!(
        a.histogram("gen_ai.server.time_to_first_token", &[], w)
            .is_none(),
        "no TTFT for a failed request"
    );
}
