//! Counts `tracing` warning and error events by level and target into `genscope.events`, so the
//! analyzer sees error bursts whatever happens to the events themselves (console, span events,
//! nothing). One bound counter per event callsite, found by the callsite's address.

use std::collections::HashMap;
use std::sync::RwLock;

use opentelemetry::KeyValue;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::instruments::{BoundCounter, MetricDefinition, MetricsCollector};

/// The metric's name.
pub(crate) const EVENTS: &str = "genscope.events";

/// The definition of `genscope.events`.
pub(crate) fn definition() -> MetricDefinition {
    MetricDefinition::counter(EVENTS)
        .with_unit("{event}")
        .with_description("tracing events at WARN or ERROR, by level and target")
        .with_attributes(["genscope.event.level", "genscope.event.target"])
}

pub(crate) struct EventCountLayer {
    collector: MetricsCollector,
    by_callsite: RwLock<HashMap<usize, Option<BoundCounter>>>,
}

impl EventCountLayer {
    pub(crate) fn new(collector: MetricsCollector) -> Option<Self> {
        collector.create_metric(definition()).ok()?;
        Some(EventCountLayer {
            collector,
            by_callsite: RwLock::default(),
        })
    }

    fn counter(&self, event: &Event<'_>) -> Option<BoundCounter> {
        let meta = event.metadata();
        let key = std::ptr::from_ref(meta) as usize;
        if let Some(c) = self.by_callsite.read().ok()?.get(&key) {
            return c.clone();
        }
        let attrs = [
            KeyValue::new("genscope.event.level", meta.level().as_str()),
            KeyValue::new("genscope.event.target", meta.target().to_string()),
        ];
        let bound = self.collector.bind_counter(EVENTS, &attrs).ok();
        if let Ok(mut map) = self.by_callsite.write() {
            map.insert(key, bound.clone());
        }
        bound
    }
}

impl<S: Subscriber> Layer<S> for EventCountLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() > Level::WARN {
            return;
        }
        if let Some(c) = self.counter(event) {
            let _ = c.add(1.0);
        }
    }
}
