//! Trends: least-squares slope per minute over a metric's per-collection values, and whether it is
//! significant given the noise around the line.
//!
//! A trend is **significant** when all three hold: at least [`MIN_POINTS`] points; the slope is
//! more than [`T_THRESHOLD`] standard errors from zero (a t-test on the slope, about 95 %
//! confidence); and the change it predicts over the window is at least [`MIN_RELATIVE_CHANGE`] of
//! the mean (statistically real but negligible drifts are reported as flat).

use serde::{Deserialize, Serialize};

/// Fewest points a trend is judged on.
pub const MIN_POINTS: usize = 6;
/// |slope / standard error| above which the slope is not noise.
pub const T_THRESHOLD: f64 = 2.0;
/// Smallest change over the window, relative to the mean, that counts.
pub const MIN_RELATIVE_CHANGE: f64 = 0.05;

/// Direction of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Significantly up.
    Rising,
    /// Significantly down.
    Falling,
    /// Not significant either way.
    Flat,
}

/// A fitted trend.
///
/// ```
/// use genscope::analyzer::report::{Direction, Trend};
/// let points: Vec<(f64, f64)> = (0..20).map(|i| (i as f64 * 10.0, 100.0 + i as f64)).collect();
/// let t = Trend::fit("queue", "{request}", &points).unwrap();
/// assert_eq!(t.direction, Direction::Rising);
/// assert!((t.slope_per_minute - 6.0).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// What was fitted.
    pub metric: String,
    /// Its unit.
    pub unit: String,
    /// Change per minute.
    pub slope_per_minute: f64,
    /// Standard error of the slope, per minute.
    pub standard_error: f64,
    /// Mean of the values.
    pub mean: f64,
    /// First and last fitted values (the line at the first and last time).
    pub fitted_start: f64,
    /// See `fitted_start`.
    pub fitted_end: f64,
    /// Points fitted.
    pub points: usize,
    /// Direction (flat unless significant).
    pub direction: Direction,
    /// See the module docs.
    pub significant: bool,
}

impl Trend {
    /// Fits `(seconds, value)` points. `None` with fewer than three points or a single time (no
    /// standard error can be estimated from two).
    pub fn fit(metric: &str, unit: &str, points: &[(f64, f64)]) -> Option<Trend> {
        let pts: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|(t, v)| t.is_finite() && v.is_finite())
            .collect();
        let n = pts.len();
        if n < 3 {
            return None;
        }
        let nf = n as f64;
        let mt = pts.iter().map(|p| p.0).sum::<f64>() / nf;
        let mv = pts.iter().map(|p| p.1).sum::<f64>() / nf;
        let sxx: f64 = pts.iter().map(|p| (p.0 - mt).powi(2)).sum();
        if sxx <= 0.0 {
            return None;
        }
        let sxy: f64 = pts.iter().map(|p| (p.0 - mt) * (p.1 - mv)).sum();
        let slope = sxy / sxx;
        let intercept = mv - slope * mt;
        let sse: f64 = pts
            .iter()
            .map(|p| (p.1 - (intercept + slope * p.0)).powi(2))
            .sum();
        let se = (sse / (nf - 2.0) / sxx).sqrt();
        let (t0, t1) = (pts[0].0, pts[n - 1].0);
        let (fitted_start, fitted_end) = (intercept + slope * t0, intercept + slope * t1);
        let change = (fitted_end - fitted_start).abs();
        let t_stat = if se > 0.0 {
            slope.abs() / se
        } else if slope != 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        let significant = n >= MIN_POINTS
            && t_stat > T_THRESHOLD
            && change >= MIN_RELATIVE_CHANGE * mv.abs().max(f64::MIN_POSITIVE);
        let direction = match (significant, slope > 0.0) {
            (false, _) => Direction::Flat,
            (true, true) => Direction::Rising,
            (true, false) => Direction::Falling,
        };
        Some(Trend {
            metric: metric.to_string(),
            unit: unit.to_string(),
            slope_per_minute: slope * 60.0,
            standard_error: se * 60.0,
            mean: mv,
            fitted_start,
            fitted_end,
            points: n,
            direction,
            significant,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(i: usize) -> f64 {
        // Deterministic pseudo-noise in [-1, 1].
        (((i as u64).wrapping_mul(2654435761) % 1000) as f64 / 500.0) - 1.0
    }

    #[test]
    fn a_clear_rise_is_significant() {
        let pts: Vec<(f64, f64)> = (0..30)
            .map(|i| (i as f64 * 10.0, 50.0 + i as f64 * 2.0 + noise(i)))
            .collect();
        let t = Trend::fit("m", "1", &pts).unwrap();
        assert!(t.significant);
        assert_eq!(t.direction, Direction::Rising);
        assert!((t.slope_per_minute - 12.0).abs() < 1.0, "{t:?}");
    }

    #[test]
    fn noise_without_drift_is_flat() {
        let pts: Vec<(f64, f64)> = (0..30)
            .map(|i| (i as f64 * 10.0, 50.0 + 10.0 * noise(i)))
            .collect();
        let t = Trend::fit("m", "1", &pts).unwrap();
        assert!(!t.significant, "{t:?}");
        assert_eq!(t.direction, Direction::Flat);
    }

    #[test]
    fn a_real_but_negligible_drift_is_flat() {
        // 0.1 % over the window, noiseless: t is huge, the change is not worth reporting.
        let pts: Vec<(f64, f64)> = (0..30)
            .map(|i| (i as f64, 1000.0 + i as f64 * 0.03))
            .collect();
        let t = Trend::fit("m", "1", &pts).unwrap();
        assert!(!t.significant);
    }

    #[test]
    fn too_few_points_are_never_significant() {
        let pts = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 5.0)];
        let t = Trend::fit("m", "1", &pts).unwrap();
        assert!(!t.significant);
        assert!(Trend::fit("m", "1", &[(1.0, 1.0)]).is_none());
        assert!(Trend::fit("m", "1", &[(1.0, 1.0), (2.0, 2.0)]).is_none());
        assert!(Trend::fit("m", "1", &[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]).is_none());
    }
}
