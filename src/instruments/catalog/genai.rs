//! GenAI semantic conventions (open-telemetry/semantic-conventions-genai, Development status):
//! client and server metrics with their advisory buckets and required attributes, and
//! opt-in content capture.

use std::time::Duration;

use opentelemetry::KeyValue;

use crate::config::ContentCapture;
use crate::instruments::{
    DefinitionError, InstrumentKind, Metric, MetricDefinition, MetricsCollector,
};

/// `gen_ai.client.token.usage` buckets.
pub const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// `gen_ai.client.operation.duration` / `gen_ai.server.request.duration` buckets.
pub const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// `gen_ai.server.time_to_first_token` buckets.
pub const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// `gen_ai.server.time_per_output_token` buckets.
pub const TPOT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];

const COMMON: [&str; 7] = [
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "server.address",
    "server.port",
    "error.type",
];

fn hist(
    name: &'static str,
    unit: &'static str,
    buckets: &[f64],
    desc: &'static str,
) -> MetricDefinition {
    MetricDefinition::new(name, InstrumentKind::Histogram)
        .with_unit(unit)
        .with_description(desc)
        .with_buckets(buckets.iter().copied())
        .with_attributes(COMMON)
}

/// The GenAI catalog definitions.
pub fn definitions() -> Vec<MetricDefinition> {
    let mut token_attrs = COMMON.to_vec();
    token_attrs.push("gen_ai.token.type");
    vec![
        hist(
            "gen_ai.client.token.usage",
            "{token}",
            TOKEN_BUCKETS,
            "Number of input and output tokens used",
        )
        .with_attributes(token_attrs),
        hist(
            "gen_ai.client.operation.duration",
            "s",
            DURATION_BUCKETS,
            "GenAI operation duration",
        ),
        hist(
            "gen_ai.server.request.duration",
            "s",
            DURATION_BUCKETS,
            "Generative AI server request duration such as time-to-last byte or last output token",
        ),
        hist(
            "gen_ai.server.time_to_first_token",
            "s",
            TTFT_BUCKETS,
            "Time to generate first token for successful responses",
        ),
        hist(
            "gen_ai.server.time_per_output_token",
            "s",
            TPOT_BUCKETS,
            "Time per output token generated after the first token for successful responses",
        ),
        hist(
            "genscope.gen_ai.prompt.length",
            "{character}",
            TOKEN_BUCKETS,
            "Prompt length in characters, recorded when no tokenizer count is known",
        ),
    ]
}

/// `gen_ai.operation.name` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `chat`
    Chat,
    /// `text_completion`
    TextCompletion,
    /// `embeddings`
    Embeddings,
    /// `generate_content` (also image, audio and video output)
    GenerateContent,
    /// `execute_tool`
    ExecuteTool,
    /// `invoke_agent`
    InvokeAgent,
    /// `retrieval`
    Retrieval,
    /// A value the conventions do not list yet.
    Other(String),
}

impl Operation {
    /// The attribute value.
    pub fn as_str(&self) -> &str {
        match self {
            Operation::Chat => "chat",
            Operation::TextCompletion => "text_completion",
            Operation::Embeddings => "embeddings",
            Operation::GenerateContent => "generate_content",
            Operation::ExecuteTool => "execute_tool",
            Operation::InvokeAgent => "invoke_agent",
            Operation::Retrieval => "retrieval",
            Operation::Other(s) => s,
        }
    }
}

/// The attributes every GenAI metric carries. The required ones (`gen_ai.operation.name`,
/// `gen_ai.provider.name`) are constructor arguments, so they cannot be forgotten.
///
/// ```
/// use genscope::instruments::catalog::genai::{GenAiAttributes, Operation};
/// let a = GenAiAttributes::new(Operation::Chat, "self-hosted")?.request_model("llama-3-8b");
/// assert_eq!(a.to_key_values().len(), 3);
/// # Ok::<(), genscope::instruments::DefinitionError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GenAiAttributes {
    operation: Operation,
    provider: String,
    request_model: Option<String>,
    response_model: Option<String>,
    server_address: Option<String>,
    server_port: Option<u16>,
}

impl GenAiAttributes {
    /// Required attributes. An empty provider or operation name is refused.
    pub fn new(operation: Operation, provider: impl Into<String>) -> Result<Self, DefinitionError> {
        let provider = provider.into();
        for (key, value) in [
            ("gen_ai.provider.name", provider.as_str()),
            ("gen_ai.operation.name", operation.as_str()),
        ] {
            if value.trim().is_empty() {
                return Err(DefinitionError::InvalidAttributeKey {
                    name: "gen_ai.*".into(),
                    key: format!("{key} (empty value)"),
                });
            }
        }
        Ok(GenAiAttributes {
            operation,
            provider,
            request_model: None,
            response_model: None,
            server_address: None,
            server_port: None,
        })
    }
    /// `gen_ai.request.model`.
    pub fn request_model(mut self, model: impl Into<String>) -> Self {
        self.request_model = Some(model.into());
        self
    }
    /// The `gen_ai.request.model` set, if any.
    pub fn request_model_name(&self) -> Option<&str> {
        self.request_model.as_deref()
    }
    /// `gen_ai.response.model`.
    pub fn response_model(mut self, model: impl Into<String>) -> Self {
        self.response_model = Some(model.into());
        self
    }
    /// `server.address` and `server.port`.
    pub fn server(mut self, address: impl Into<String>, port: u16) -> Self {
        self.server_address = Some(address.into());
        self.server_port = Some(port);
        self
    }

    /// The attributes as OTel key-values.
    pub fn to_key_values(&self) -> Vec<KeyValue> {
        let mut kv = vec![
            KeyValue::new("gen_ai.operation.name", self.operation.as_str().to_string()),
            KeyValue::new("gen_ai.provider.name", self.provider.clone()),
        ];
        if let Some(m) = &self.request_model {
            kv.push(KeyValue::new("gen_ai.request.model", m.clone()));
        }
        if let Some(m) = &self.response_model {
            kv.push(KeyValue::new("gen_ai.response.model", m.clone()));
        }
        if let Some(a) = &self.server_address {
            kv.push(KeyValue::new("server.address", a.clone()));
        }
        if let Some(p) = self.server_port {
            kv.push(KeyValue::new("server.port", i64::from(p)));
        }
        kv
    }

    /// The span name the conventions prescribe: `{gen_ai.operation.name} {gen_ai.request.model}`.
    pub fn span_name(&self) -> String {
        match &self.request_model {
            Some(m) => format!("{} {m}", self.operation.as_str()),
            None => self.operation.as_str().to_string(),
        }
    }
}

/// Timings of one server-side generation request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServerTiming {
    /// Request duration (to the last output token).
    pub duration: Duration,
    /// Time to the first output token, for streaming or token-by-token generation.
    pub time_to_first_token: Option<Duration>,
    /// Output tokens generated.
    pub output_tokens: Option<u64>,
}

impl ServerTiming {
    /// Time per output token by the semconv formula: (duration − TTFT) / (output tokens − 1),
    /// defined only with a TTFT and at least two output tokens.
    ///
    /// ```
    /// use std::time::Duration;
    /// use genscope::instruments::catalog::genai::ServerTiming;
    /// let t = ServerTiming { duration: Duration::from_millis(1100), time_to_first_token: Some(Duration::from_millis(100)), output_tokens: Some(11) };
    /// assert!((t.time_per_output_token().unwrap() - 0.1).abs() < 1e-9);
    /// ```
    pub fn time_per_output_token(&self) -> Option<f64> {
        let ttft = self.time_to_first_token?;
        let tokens = self.output_tokens?;
        if tokens < 2 || ttft > self.duration {
            return None;
        }
        Some((self.duration - ttft).as_secs_f64() / (tokens - 1) as f64)
    }
}

/// Typed recorder for the GenAI catalog. Get it with
/// [`MetricsCollector::genai`](crate::instruments::MetricsCollector::genai).
///
/// ```
/// use std::time::Duration;
/// use genscope::instruments::catalog::genai::{GenAiAttributes, Operation, ServerTiming};
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let genai = telemetry.metrics().genai()?;
/// let attrs = GenAiAttributes::new(Operation::Chat, "self-hosted")?.request_model("llama-3-8b");
/// genai.record_tokens(&attrs, Some(120), Some(40));
/// genai.record_server_request(&attrs, ServerTiming {
///     duration: Duration::from_millis(900),
///     time_to_first_token: Some(Duration::from_millis(120)),
///     output_tokens: Some(40),
/// }, None);
/// telemetry.force_flush()?;
/// let h = telemetry.analyzer().histogram("gen_ai.server.time_per_output_token", &[], genscope::analyzer::Window::all());
/// assert_eq!(h.map(|h| h.count), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct GenAiMetrics {
    token_usage: Metric,
    client_duration: Metric,
    server_duration: Metric,
    ttft: Metric,
    tpot: Metric,
    prompt_length: Metric,
    capture: ContentCapture,
}

impl GenAiMetrics {
    pub(crate) fn new(
        c: &MetricsCollector,
        capture: ContentCapture,
    ) -> Result<Self, DefinitionError> {
        let d = definitions();
        let m = |i: usize| c.create_metric(d[i].clone());
        Ok(GenAiMetrics {
            token_usage: m(0)?,
            client_duration: m(1)?,
            server_duration: m(2)?,
            ttft: m(3)?,
            tpot: m(4)?,
            prompt_length: m(5)?,
            capture,
        })
    }

    /// `gen_ai.client.token.usage` for input and output tokens (each when known).
    pub fn record_tokens(&self, attrs: &GenAiAttributes, input: Option<u64>, output: Option<u64>) {
        let mut kv = attrs.to_key_values();
        for (kind, n) in [("input", input), ("output", output)] {
            if let Some(n) = n {
                kv.push(KeyValue::new("gen_ai.token.type", kind));
                let _ = self.token_usage.record(n as f64, &kv);
                kv.pop();
            }
        }
    }

    /// Prompt length: input tokens into `gen_ai.client.token.usage` when a tokenizer count is
    /// known, else characters into `genscope.gen_ai.prompt.length`. The prompt text itself is
    /// only measured, never recorded.
    pub fn record_prompt_length(
        &self,
        attrs: &GenAiAttributes,
        input_tokens: Option<u64>,
        prompt: &str,
    ) {
        match input_tokens {
            Some(t) => self.record_tokens(attrs, Some(t), None),
            None => {
                let _ = self
                    .prompt_length
                    .record(prompt.chars().count() as f64, &attrs.to_key_values());
            }
        }
    }

    /// `gen_ai.client.operation.duration`; `error_type` set on failure.
    pub fn record_client_operation(
        &self,
        attrs: &GenAiAttributes,
        duration: Duration,
        error_type: Option<&str>,
    ) {
        let mut kv = attrs.to_key_values();
        if let Some(e) = error_type {
            kv.push(KeyValue::new("error.type", e.to_string()));
        }
        let _ = self.client_duration.record(duration.as_secs_f64(), &kv);
    }

    /// `gen_ai.server.request.duration`, and for successful requests
    /// `gen_ai.server.time_to_first_token` and `gen_ai.server.time_per_output_token`.
    pub fn record_server_request(
        &self,
        attrs: &GenAiAttributes,
        timing: ServerTiming,
        error_type: Option<&str>,
    ) {
        let mut kv = attrs.to_key_values();
        if let Some(e) = error_type {
            kv.push(KeyValue::new("error.type", e.to_string()));
            let _ = self
                .server_duration
                .record(timing.duration.as_secs_f64(), &kv);
            return;
        }
        let _ = self
            .server_duration
            .record(timing.duration.as_secs_f64(), &kv);
        if let Some(ttft) = timing.time_to_first_token {
            let _ = self.ttft.record(ttft.as_secs_f64(), &kv);
        }
        if let Some(tpot) = timing.time_per_output_token() {
            let _ = self.tpot.record(tpot, &kv);
        }
    }

    /// The content-capture mode in force (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`).
    pub fn content_capture(&self) -> ContentCapture {
        self.capture
    }

    /// Attaches prompt and completion content to `span` — only when the user opted in with
    /// `SPAN_ONLY` or `SPAN_AND_EVENT` (as `gen_ai.input.messages` / `gen_ai.output.messages`
    /// attributes) or `EVENT_ONLY` / `SPAN_AND_EVENT` (as a `gen_ai.client.inference.operation.details`
    /// event). With the default `NO_CONTENT` nothing is recorded. Returns whether anything was.
    pub fn record_content(
        &self,
        span: &tracing::Span,
        input_messages: &str,
        output_messages: &str,
    ) -> bool {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let mut recorded = false;
        if self.capture.on_span() {
            span.set_attribute("gen_ai.input.messages", input_messages.to_string());
            span.set_attribute("gen_ai.output.messages", output_messages.to_string());
            recorded = true;
        }
        if self.capture.as_event() {
            span.add_event(
                "gen_ai.client.inference.operation.details",
                vec![
                    KeyValue::new("gen_ai.input.messages", input_messages.to_string()),
                    KeyValue::new("gen_ai.output.messages", output_messages.to_string()),
                ],
            );
            recorded = true;
        }
        recorded
    }
}

impl MetricsCollector {
    /// The GenAI catalog's typed recorder (defines its metrics on first use).
    pub fn genai(&self) -> Result<GenAiMetrics, DefinitionError> {
        GenAiMetrics::new(self, self.content_capture())
    }
}
