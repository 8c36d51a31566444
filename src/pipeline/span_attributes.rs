//! Span attributes in the registry's terms, fixed on the export thread (never on the caller's):
//! the `tracing` bridge's code location, and integers the bridge turned into strings.

use opentelemetry::{KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::SpanData;

use crate::config::SpanExtras;

/// Registry attributes of type `int` that `tracing` users record from `u64`/`u32`/`usize`
/// values: `tracing-opentelemetry` 0.34 has no `record_u64` for span fields, so those arrive as
/// decimal strings. Exactly these keys are turned back into integers (a string that is not a
/// decimal `i64` is left as it is).
const INT_ATTRIBUTES: &[&str] = &[
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.request.max_tokens",
    "gen_ai.request.choice.count",
    "gen_ai.request.seed",
    "server.port",
    "client.port",
    "http.response.status_code",
    "http.request.body.size",
    "http.response.body.size",
    "genscope.download.bytes",
    "genscope.generation.steps",
    "genscope.generation.steps.completed",
];

/// Applies the code-location rules of `extras` and the integer repair to one span and its
/// events.
pub(crate) fn normalize(span: &mut SpanData, extras: SpanExtras) {
    integers(&mut span.attributes);
    code_location(span, extras);
    for event in &mut span.events.events {
        integers(&mut event.attributes);
        event_attributes(&mut event.attributes, extras);
    }
}

fn integers(attributes: &mut [KeyValue]) {
    for kv in attributes {
        if let Value::String(s) = &kv.value
            && INT_ATTRIBUTES.contains(&kv.key.as_str())
            && let Ok(n) = s.as_str().parse::<i64>()
        {
            kv.value = Value::I64(n);
        }
    }
}

/// A `tracing` event recorded on a span gets `level` and `target` from the bridge, and its code
/// location: `level` becomes `genscope.event.level` (no registry attribute carries a `tracing`
/// level), `target`, `code.module.name` and the location follow `extras` as on spans.
fn event_attributes(attributes: &mut Vec<KeyValue>, extras: SpanExtras) {
    attributes.retain_mut(|kv| match kv.key.as_str() {
        "level" => {
            kv.key = opentelemetry::Key::from_static_str("genscope.event.level");
            true
        }
        "target" => extras.target,
        "code.module.name" => extras.module,
        "code.file.path" | "code.line.number" => extras.location,
        _ => true,
    });
}

/// The bridge's location attributes in the registry's terms: `code.function.name` from the module
/// path and a span name that is an identifier (`#[instrument]` names a span after its function);
/// `code.module.name` (no registry defines it) dropped unless `module` is kept, the file and line
/// unless `location` is.
fn code_location(span: &mut SpanData, extras: SpanExtras) {
    let Some(at) = span
        .attributes
        .iter()
        .position(|kv| kv.key.as_str() == "code.module.name")
    else {
        return;
    };
    let name = span.name.as_ref();
    let identifier = name
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    let function = (extras.location && identifier)
        .then(|| StringValue::from(format!("{}::{name}", span.attributes[at].value.as_str())));
    if !extras.module {
        span.attributes.remove(at);
    }
    if !extras.location {
        span.attributes
            .retain(|kv| !matches!(kv.key.as_str(), "code.file.path" | "code.line.number"));
    }
    if let Some(f) = function {
        span.attributes.push(KeyValue::new("code.function.name", f));
    }
}
