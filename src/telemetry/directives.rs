//! The traces, logs and console filters: `EnvFilter` directives, answered by a `Targets` filter
//! when they are static.
//!
//! An `EnvFilter` takes a read lock on its span map on every span enter, exit and close, even when
//! no directive names a span or a field (tracing-subscriber 0.3.23), and each filter of the stack
//! does it again: about 180 instructions per span and filter by callgrind, most of a per-layer
//! filter's cost beyond the per-layer machinery itself (`BENCHMARKS.md`). Directives without a
//! span part (`target=level` and bare levels, the usual case) decide on the callsite alone, which
//! is exactly what `Targets` does with the same directive parser and the same most-specific-
//! target matching, with no per-span hooks. Anything else (`target[span{field=value}]=level`, or a
//! string `Targets` refuses) stays an `EnvFilter`.

use tracing::level_filters::LevelFilter;
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

/// Parsed filter directives (see the module docs).
#[derive(Debug)]
pub(crate) enum Directives {
    /// Only `target=level` and level directives.
    Static(Targets),
    /// Directives with span or field parts.
    Dynamic(Box<EnvFilter>),
}

impl Directives {
    /// Parses `directives` as `EnvFilter::builder().parse_lossy` would (invalid directives are
    /// skipped), as a `Targets` when every directive is static.
    pub(crate) fn parse_lossy(directives: &str) -> Self {
        Self::try_static(directives)
            .map(Directives::Static)
            .unwrap_or_else(|| {
                Directives::Dynamic(Box::new(EnvFilter::builder().parse_lossy(directives)))
            })
    }

    /// Parses `directives` as `EnvFilter::builder().parse` would.
    pub(crate) fn parse(directives: &str) -> Result<Self, tracing_subscriber::filter::ParseError> {
        match Self::try_static(directives) {
            Some(targets) => Ok(Directives::Static(targets)),
            None => EnvFilter::builder()
                .parse(directives)
                .map(|e| Directives::Dynamic(Box::new(e))),
        }
    }

    fn try_static(directives: &str) -> Option<Targets> {
        if directives.contains('[') || directives.split(',').any(|d| d.trim().is_empty()) {
            return None;
        }
        directives.parse::<Targets>().ok()
    }

    /// The most verbose level any directive enables.
    pub(crate) fn max_level_hint<S>(&self) -> Option<LevelFilter>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match self {
            Directives::Static(t) => Filter::<S>::max_level_hint(t),
            Directives::Dynamic(e) => Filter::<S>::max_level_hint(&**e),
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Filter<S> for Directives {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        match self {
            Directives::Static(t) => Filter::<S>::enabled(t, meta, cx),
            Directives::Dynamic(e) => Filter::<S>::enabled(&**e, meta, cx),
        }
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        match self {
            Directives::Static(t) => Filter::<S>::callsite_enabled(t, meta),
            Directives::Dynamic(e) => Filter::<S>::callsite_enabled(&**e, meta),
        }
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool {
        match self {
            Directives::Static(_) => true,
            Directives::Dynamic(e) => Filter::<S>::event_enabled(&**e, event, cx),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Directives::max_level_hint::<S>(self)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if let Directives::Dynamic(e) = self {
            Filter::<S>::on_new_span(&**e, attrs, id, ctx)
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Directives::Dynamic(e) = self {
            Filter::<S>::on_record(&**e, id, values, ctx)
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if let Directives::Dynamic(e) = self {
            Filter::<S>::on_enter(&**e, id, ctx)
        }
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        if let Directives::Dynamic(e) = self {
            Filter::<S>::on_exit(&**e, id, ctx)
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if let Directives::Dynamic(e) = self {
            Filter::<S>::on_close(&**e, id, ctx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing::Level;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Default, Clone)]
    struct Seen(Arc<std::sync::Mutex<Vec<String>>>, Arc<AtomicUsize>);

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Seen {
        fn on_event(&self, e: &Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            let m = e.metadata();
            self.0
                .lock()
                .unwrap()
                .push(format!("event {} {}", m.target(), m.level()));
        }
        fn on_new_span(&self, a: &span::Attributes<'_>, _: &span::Id, _: Context<'_, S>) {
            let m = a.metadata();
            self.0
                .lock()
                .unwrap()
                .push(format!("span {} {}", m.target(), m.level()));
        }
        fn on_enter(&self, _: &span::Id, _: Context<'_, S>) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }

    macro_rules! at_every_level {
        ($target:literal) => {
            tracing::event!(target: $target, Level::TRACE, "e");
            tracing::event!(target: $target, Level::DEBUG, "e");
            tracing::event!(target: $target, Level::INFO, "e");
            tracing::event!(target: $target, Level::WARN, "e");
            tracing::event!(target: $target, Level::ERROR, "e");
            tracing::span!(target: $target, Level::TRACE, "s").in_scope(|| {});
            tracing::span!(target: $target, Level::DEBUG, "s").in_scope(|| {});
            tracing::span!(target: $target, Level::INFO, "s").in_scope(|| {});
            tracing::span!(target: $target, Level::WARN, "s").in_scope(|| {});
        };
    }

    fn emit() {
        at_every_level!("genscope");
        at_every_level!("genscope::pipeline");
        at_every_level!("app");
        at_every_level!("app::db");
        at_every_level!("application");
        at_every_level!("h2");
        at_every_level!("hyper::proto");
    }

    fn seen<F: Filter<tracing_subscriber::Registry> + Send + Sync + 'static>(
        filter: F,
    ) -> (Vec<String>, usize) {
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(seen.clone().with_filter(filter));
        tracing::subscriber::with_default(subscriber, emit);
        let list = seen.0.lock().unwrap().clone();
        (list, seen.1.load(Ordering::Relaxed))
    }

    /// Static directives answer exactly as `EnvFilter` does, for events and spans at every level
    /// and target prefix; the others stay an `EnvFilter`.
    #[test]
    fn static_directives_decide_as_env_filter_does() {
        let cases = [
            "info",
            "warn,app=debug",
            "app=trace,app::db=warn",
            "trace,h2=off,hyper=off",
            "genscope=debug",
            "off",
            "app",
            "APP=Debug,INFO",
            "error,genscope::pipeline=trace,application=info",
        ];
        for d in cases {
            let parsed = Directives::parse(d).unwrap();
            assert!(matches!(parsed, Directives::Static(_)), "{d} is static");
            let env = EnvFilter::builder().parse(d).unwrap();
            assert_eq!(seen(parsed), seen(env), "directives {d:?}");
            let lossy = Directives::parse_lossy(d);
            assert!(matches!(lossy, Directives::Static(_)));
        }
        for d in ["app[s]=debug", "info,[s{x=1}]=trace", "info,,app=debug", ""] {
            assert!(
                matches!(Directives::parse_lossy(d), Directives::Dynamic(_)),
                "{d:?} stays an EnvFilter"
            );
        }
        // The comparison sees what the filters let through: not nothing, and not the same for all.
        let (info, info_enters) = seen(Directives::parse("info").unwrap());
        let (warn, _) = seen(Directives::parse("warn,app=debug").unwrap());
        assert!(info.contains(&"span app::db INFO".to_string()) && info_enters == 14);
        assert!(warn.contains(&"event app::db DEBUG".to_string()));
        assert!(
            !warn.contains(&"event h2 INFO".to_string())
                && info.contains(&"event h2 INFO".to_string())
        );
        let dynamic = Directives::parse("info,app[s]=trace").unwrap();
        let env = EnvFilter::builder().parse("info,app[s]=trace").unwrap();
        assert_eq!(seen(dynamic), seen(env));
        assert!(Directives::parse("app=loud").is_err());
    }

    #[test]
    fn level_hints_match() {
        type R = tracing_subscriber::Registry;
        for d in ["info", "warn,app=debug", "off", "app=trace"] {
            let env = EnvFilter::builder().parse(d).unwrap();
            assert_eq!(
                Directives::parse(d).unwrap().max_level_hint::<R>(),
                Filter::<R>::max_level_hint(&env),
                "{d}"
            );
        }
    }
}
