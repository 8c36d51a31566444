//! `examples/llm_server.rs` as a user meets it: a child process on a free port, real HTTP, OTLP
//! to a real receiver. Health, models, both completion modes, OpenAI error bodies, the gateway
//! series on `/metrics` while requests wait and run, and a clean exit on SIGTERM.

#![cfg(feature = "tower")]

mod common;

use std::time::{Duration, Instant};

use common::llm_server::{post, start};
use common::{Mode, Receiver, http_get};

fn gauge(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(&format!("{name}{{model_name=\"genscope-sim\"}}")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_server_answers_like_openai_and_shows_its_queue_to_the_gateway() {
    let rx = Receiver::grpc(Mode::Normal);
    let server = start(
        &rx,
        &["--max-batch", "2"],
        &[("GENSCOPE_MODEL_SERVER_METRICS", "vllm")],
    );
    let addr = server.addr;
    let (status, _, body) = http_get(addr, "/health", None);
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (_, _, models) = http_get(addr, "/v1/models", None);
    let models: serde_json::Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["id"], "genscope-sim");

    let (status, body) = post(
        addr,
        "/v1/chat/completions",
        r#"{"model":"genscope-sim","messages":[{"role":"user","content":"one two three"}],"max_tokens":5}"#,
    );
    assert_eq!(status, 200, "{body}");
    let done: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(done["object"], "chat.completion");
    assert_eq!(done["usage"]["prompt_tokens"], 3);
    assert_eq!(done["usage"]["completion_tokens"], 5);
    assert_eq!(done["choices"][0]["finish_reason"], "length");

    let (status, sse) = post(
        addr,
        "/v1/chat/completions",
        r#"{"model":"genscope-sim","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}"#,
    );
    assert_eq!(status, 200);
    let events: Vec<&str> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{sse}");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, " tok1 tok2 tok3");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);

    for (body, status, code, param) in [
        ("{bad", 400, None, None),
        (
            r#"{"model":"nope","messages":[]}"#,
            404,
            Some("model_not_found"),
            Some("model"),
        ),
        (r#"{"messages":[]}"#, 400, None, Some("model")),
        ("[1, 2]", 400, None, Some("model")),
        (r#"{"model":"genscope-sim"}"#, 400, None, Some("messages")),
        (
            r#"{"model":"genscope-sim","messages":[],"max_tokens":0}"#,
            400,
            None,
            Some("max_tokens"),
        ),
        (
            r#"{"model":"genscope-sim","messages":[],"max_completion_tokens":-1}"#,
            400,
            None,
            Some("max_completion_tokens"),
        ),
    ] {
        let (got, text) = post(addr, "/v1/chat/completions", body);
        assert_eq!(got, status, "{body}: {text}");
        let e: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error", "{text}");
        assert_eq!(e["error"]["code"].as_str(), code, "{text}");
        assert_eq!(e["error"]["param"].as_str(), param, "{text}");
    }

    // Six long requests on two batch slots: four wait while two run.
    let clients: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                post(
                    addr,
                    "/v1/chat/completions",
                    r#"{"model":"genscope-sim","messages":[{"role":"user","content":"long"}],"max_tokens":60}"#,
                )
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = None;
    while Instant::now() < deadline {
        let (_, _, m) = http_get(addr, "/metrics", None);
        let (w, r) = (
            gauge(&m, "vllm:num_requests_waiting"),
            gauge(&m, "vllm:num_requests_running"),
        );
        if let (Some(w), Some(r)) = (w, r)
            && w >= 1.0
            && r == 2.0
        {
            seen = Some((w, r, gauge(&m, "vllm:kv_cache_usage_perc")));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (waiting, _, usage) = seen.expect("waiting and running requests seen on /metrics");
    assert!(waiting <= 4.0);
    let usage = usage.expect("kv usage");
    assert!(usage > 0.0 && usage <= 1.0, "vLLM's 0..1 range: {usage}");
    for c in clients {
        assert_eq!(c.join().unwrap().0, 200);
    }

    // SIGTERM: drains, flushes, exits 0.
    let mut server = server;
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let status = server.child.wait().expect("exit");
    assert!(status.success(), "{status:?}");
    assert!(rx.wait_for(Duration::from_secs(10), |r| {
        r.spans().iter().any(|s| s.name == "chat genscope-sim")
    }));
    let spans = rx.spans();
    let chat = spans
        .iter()
        .find(|s| s.name == "chat genscope-sim")
        .unwrap();
    let server_span = spans
        .iter()
        .find(|s| s.span_id == chat.parent_span_id)
        .expect("the chat span's parent");
    assert_eq!(server_span.name, "POST /v1/chat/completions");
    assert!(common::attr(&chat.attributes, "genscope.latency.decode").is_some());

    // Each rejected request was logged at WARN with its reason (the body): an OTLP log record with the
    // trace and span id of its request's SERVER span.
    let rejected: Vec<_> = rx
        .log_records()
        .into_iter()
        .filter(|r| {
            matches!(r.body.as_ref().and_then(|b| b.value.as_ref()),
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s))
                    if s.starts_with("request rejected: ") && s.len() > "request rejected: ".len())
        })
        .collect();
    assert_eq!(rejected.len(), 7, "one WARN record per rejected request");
    for r in &rejected {
        assert_eq!(r.severity_text, "WARN");
        assert!(common::attr_str(&r.attributes, "error.type").is_some());
        let span = spans
            .iter()
            .find(|s| s.trace_id == r.trace_id && s.span_id == r.span_id)
            .expect("the record's span is at the receiver");
        assert_eq!(span.name, "POST /v1/chat/completions");
    }
}
