//! [`Window`], the time range every query takes.

use std::time::{Duration, SystemTime};

/// A time range `(start, end]`.
///
/// ```
/// use genscope::analyzer::Window;
/// let w = Window::last(std::time::Duration::from_secs(300));
/// assert!(w.end > w.start);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Exclusive start.
    pub start: SystemTime,
    /// Inclusive end.
    pub end: SystemTime,
}

impl Window {
    /// The last `duration` up to now.
    pub fn last(duration: Duration) -> Window {
        let end = SystemTime::now();
        Window {
            start: end.checked_sub(duration).unwrap_or(SystemTime::UNIX_EPOCH),
            end,
        }
    }

    /// Everything the store holds.
    pub fn all() -> Window {
        Window {
            start: SystemTime::UNIX_EPOCH,
            end: SystemTime::now() + Duration::from_secs(86_400),
        }
    }

    pub(super) fn contains(&self, t: SystemTime) -> bool {
        t > self.start && t <= self.end
    }

    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.end
            .duration_since(self.start)
            .unwrap_or_default()
            .as_secs_f64()
    }
}
