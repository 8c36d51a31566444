//! The logs bridge's filter: `GENSCOPE_LOGS_FILTER` (`EnvFilter` directives) with a level hint that
//! never hides the spans filter's.
//!
//! genscope's layer is the logs bridge layered over the spans stack, each with its own per-layer
//! filter. Over a `Registry`, tracing-subscriber 0.3 takes such a pair's level hint from the
//! outer layer alone (`Layered` treats the registry type parameter as "inner is the registry"),
//! so a logs filter at `info` would silence `debug` spans the traces filter asks for. This filter
//! answers exactly as the logs directives do and reports as its hint the more verbose of both
//! filters' hints: a hint is only an upper bound, so a more verbose one is always correct.

use tracing::level_filters::LevelFilter;
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use super::directives::Directives;

pub(crate) struct LogsFilter {
    logs: Directives,
    hint: Option<LevelFilter>,
}

impl LogsFilter {
    /// `logs` decides; the hint covers `logs` and `spans`.
    pub(crate) fn new<S>(logs: Directives, spans: &Directives) -> Self
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let hint = match (logs.max_level_hint::<S>(), spans.max_level_hint::<S>()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        LogsFilter { logs, hint }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Filter<S> for LogsFilter {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        Filter::<S>::enabled(&self.logs, meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        Filter::<S>::callsite_enabled(&self.logs, meta)
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool {
        Filter::<S>::event_enabled(&self.logs, event, cx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.hint
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        Filter::<S>::on_new_span(&self.logs, attrs, id, ctx)
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        Filter::<S>::on_record(&self.logs, id, values, ctx)
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        Filter::<S>::on_enter(&self.logs, id, ctx)
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        Filter::<S>::on_exit(&self.logs, id, ctx)
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        Filter::<S>::on_close(&self.logs, id, ctx)
    }
}
