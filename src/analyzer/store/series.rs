//! One series' stored history: points normalized to per-interval deltas whatever the wire
//! temporality (a cumulative series is differenced against its previous point; a lower value or a
//! new start time is a reset), and its current value as a cumulative view.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::histogram::HistogramDelta;
use super::metric_values::{Attributes, SeriesSnapshot, SeriesValue};

#[derive(Debug, Clone)]
pub(in crate::analyzer) enum PointValue {
    /// `total` is the series value at `time`; `delta` the change since the previous point.
    Sum {
        total: f64,
        delta: f64,
    },
    Gauge(f64),
    /// Boxed: most points are sums and gauges, and a point's size is its largest variant's.
    Histogram(Box<HistogramDelta>),
}

#[derive(Debug, Clone)]
pub(in crate::analyzer) struct Point {
    /// Nanoseconds since the Unix epoch: 8 bytes instead of `SystemTime`'s 16, on the type the
    /// store holds most of.
    time_ns: u64,
    pub(in crate::analyzer) value: PointValue,
}

impl Point {
    pub(super) fn new(time: SystemTime, value: PointValue) -> Point {
        let ns = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Point {
            time_ns: u64::try_from(ns).unwrap_or(u64::MAX),
            value,
        }
    }

    pub(in crate::analyzer) fn time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.time_ns)
    }
}

#[derive(Debug, Clone)]
enum Previous {
    Sum {
        start: SystemTime,
        total: f64,
    },
    Histogram {
        start: SystemTime,
        counts: Vec<u64>,
        count: u64,
        sum: f64,
    },
}

#[derive(Debug, Default)]
pub(super) struct Series {
    pub(super) points: VecDeque<Point>,
    previous: Option<Previous>,
    /// Bucket bounds shared by this series' histogram points (one allocation, not one per point).
    bounds: Option<Arc<[f64]>>,
    /// The series' current value as a cumulative view (what `/metrics` and file export show).
    pub(super) state: Option<SeriesSnapshot>,
}

pub(in crate::analyzer) struct RawPoint {
    pub(in crate::analyzer) attributes: Attributes,
    pub(in crate::analyzer) time: SystemTime,
    pub(in crate::analyzer) value: RawValue,
}

pub(in crate::analyzer) enum RawValue {
    Sum {
        start: SystemTime,
        value: f64,
        cumulative: bool,
    },
    Gauge(f64),
    Histogram {
        start: SystemTime,
        cumulative: bool,
        delta: HistogramDelta,
    },
}

impl RawValue {
    /// Adds another series' point of the same collection (for the overflow series).
    pub(super) fn absorb(&mut self, other: RawValue) {
        match (self, other) {
            (RawValue::Sum { value, .. }, RawValue::Sum { value: v, .. }) => *value += v,
            (RawValue::Gauge(value), RawValue::Gauge(v)) => *value += v,
            (RawValue::Histogram { delta: acc, .. }, RawValue::Histogram { delta: h, .. })
                if acc.counts.len() == h.counts.len() =>
            {
                for (a, c) in acc.counts.iter_mut().zip(&h.counts) {
                    *a += c;
                }
                acc.count += h.count;
                acc.sum += h.sum;
                acc.min = match (acc.min, h.min) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                acc.max = match (acc.max, h.max) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
            _ => {}
        }
    }
}

impl Series {
    /// Appends a point. Capacity grows by doubling up to 64 points, then straight to one
    /// retention's worth (`expected`), so a long-lived series holds no doubling slack and a
    /// short-lived one does not reserve a whole retention.
    pub(super) fn push(&mut self, point: Point, expected: usize) {
        let len = self.points.len();
        if len == self.points.capacity() && len >= 64 && len < expected {
            self.points.reserve_exact(expected - len);
        }
        self.points.push_back(point);
    }

    /// The series' shared copy of `bounds` (replacing it when the bounds changed).
    fn share_bounds(&mut self, bounds: &Arc<[f64]>) -> Arc<[f64]> {
        match &self.bounds {
            Some(b) if b[..] == bounds[..] => Arc::clone(b),
            _ => {
                self.bounds = Some(Arc::clone(bounds));
                Arc::clone(bounds)
            }
        }
    }

    /// Turns an exported point into a stored delta point, remembering cumulative state and the
    /// series' current value.
    pub(super) fn normalize(
        &mut self,
        attributes: &Attributes,
        time: SystemTime,
        value: RawValue,
    ) -> Option<Point> {
        let (value, start, current) = match value {
            RawValue::Gauge(v) => {
                let start = self.state.as_ref().map_or(time, |s| s.start);
                (PointValue::Gauge(v), start, SeriesValue::Gauge(v))
            }
            RawValue::Sum {
                start,
                value,
                cumulative: true,
            } => {
                let delta = match &self.previous {
                    // Same start time: the same cumulative series (an up-down counter may go down).
                    Some(Previous::Sum { start: s, total }) if *s == start => value - total,
                    // First point, or a new start time (a reset): everything since the start.
                    _ => value,
                };
                self.previous = Some(Previous::Sum {
                    start,
                    total: value,
                });
                (
                    PointValue::Sum {
                        total: value,
                        delta,
                    },
                    start,
                    SeriesValue::Sum(value),
                )
            }
            RawValue::Sum {
                start,
                value,
                cumulative: false,
            } => {
                let total = match &self.previous {
                    Some(Previous::Sum { total, .. }) => total + value,
                    _ => value,
                };
                self.previous = Some(Previous::Sum { start: time, total });
                let first = self.state.as_ref().map_or(start, |s| s.start);
                (
                    PointValue::Sum {
                        total,
                        delta: value,
                    },
                    first,
                    SeriesValue::Sum(total),
                )
            }
            RawValue::Histogram {
                start,
                cumulative: true,
                delta: mut current,
            } => {
                current.bounds = self.share_bounds(&current.bounds);
                let out = match &self.previous {
                    Some(Previous::Histogram {
                        start: s,
                        counts,
                        count,
                        sum,
                    }) if *s == start
                        && current.count >= *count
                        && counts.len() == current.counts.len() =>
                    {
                        HistogramDelta {
                            bounds: current.bounds.clone(),
                            counts: current
                                .counts
                                .iter()
                                .zip(counts)
                                .map(|(c, p)| c.saturating_sub(*p))
                                .collect(),
                            count: current.count - count,
                            sum: current.sum - sum,
                            // Cumulative min/max cover the whole series life, not this interval.
                            min: None,
                            max: None,
                        }
                    }
                    _ => current.clone(),
                };
                self.previous = Some(Previous::Histogram {
                    start,
                    counts: current.counts.clone(),
                    count: current.count,
                    sum: current.sum,
                });
                let snapshot = SeriesValue::Histogram {
                    bounds: current.bounds.to_vec(),
                    counts: current.counts,
                    count: current.count,
                    sum: current.sum,
                    min: current.min,
                    max: current.max,
                };
                self.set_state(attributes, start, time, snapshot);
                if out.count == 0 && !self.points.is_empty() {
                    // Nothing recorded this interval: keep the store small.
                    return None;
                }
                return Some(Point::new(time, PointValue::Histogram(Box::new(out))));
            }
            RawValue::Histogram {
                start,
                cumulative: false,
                mut delta,
            } => {
                delta.bounds = self.share_bounds(&delta.bounds);
                let (first, merged) = match self.state.take() {
                    Some(SeriesSnapshot {
                        start: first,
                        value:
                            SeriesValue::Histogram {
                                bounds,
                                mut counts,
                                count,
                                sum,
                                min,
                                max,
                            },
                        ..
                    }) if counts.len() == delta.counts.len() => {
                        for (a, c) in counts.iter_mut().zip(&delta.counts) {
                            *a += c;
                        }
                        (
                            first,
                            SeriesValue::Histogram {
                                bounds,
                                counts,
                                count: count + delta.count,
                                sum: sum + delta.sum,
                                min: min_opt(min, delta.min),
                                max: max_opt(max, delta.max),
                            },
                        )
                    }
                    _ => (
                        start,
                        SeriesValue::Histogram {
                            bounds: delta.bounds.to_vec(),
                            counts: delta.counts.clone(),
                            count: delta.count,
                            sum: delta.sum,
                            min: delta.min,
                            max: delta.max,
                        },
                    ),
                };
                self.set_state(attributes, first, time, merged);
                if delta.count == 0 {
                    return None;
                }
                return Some(Point::new(time, PointValue::Histogram(Box::new(delta))));
            }
        };
        self.set_state(attributes, start, time, current);
        Some(Point::new(time, value))
    }

    fn set_state(
        &mut self,
        attributes: &Attributes,
        start: SystemTime,
        time: SystemTime,
        value: SeriesValue,
    ) {
        self.state = Some(SeriesSnapshot {
            attributes: attributes.clone(),
            start,
            time,
            value,
        });
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
