//! [`Folds`]: the per-thread sums and histogram cells of one collector, folded into their SDK
//! instruments at the start of every collection (and every [`BACKGROUND_FOLD`] on a background
//! thread once a histogram is bound).

use std::sync::{Arc, Mutex, Weak};

/// Something folded at every collection.
pub(super) trait Fold: Send + Sync {
    /// Moves what was recorded since the last fold into the SDK.
    fn fold(&self);
}

/// The live per-thread sums of one collector, folded at the start of every collection (and, once
/// a histogram is bound, every [`BACKGROUND_FOLD`] on a background thread).
#[derive(Default)]
pub(super) struct Folds {
    pub(super) live: Mutex<Vec<Weak<dyn Fold>>>,
    background: std::sync::OnceLock<()>,
}

/// How often bound histograms are replayed into the SDK between collections, so that a
/// collection only replays what was recorded since (about 15 ns a value, see
/// `histogram_cells.rs`) however long the export interval.
pub(super) const BACKGROUND_FOLD: std::time::Duration = std::time::Duration::from_millis(100);

impl Folds {
    pub(super) fn register(&self, sum: Weak<dyn Fold>) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= 64 && live.len().is_power_of_two() {
            live.retain(|w| w.strong_count() > 0);
        }
        live.push(sum);
    }

    /// Starts the background fold thread once; it holds only a weak reference and ends with
    /// the collector. Without a thread (spawn refused), collections still fold everything.
    pub(super) fn fold_in_background(self: &Arc<Self>) {
        self.background.get_or_init(|| {
            let weak = Arc::downgrade(self);
            let spawned = std::thread::Builder::new()
                .name("genscope-fold".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(BACKGROUND_FOLD);
                        match weak.upgrade() {
                            Some(folds) => folds.fold_all(),
                            None => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(target: "genscope", error = %e, "bound histograms fold at collections only: no fold thread");
            }
        });
    }

    /// Runs on the SDK's collection thread before any aggregator is read.
    pub(super) fn fold_all(&self) {
        let live: Vec<Arc<dyn Fold>> = {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.retain(|w| w.strong_count() > 0);
            live.iter().filter_map(Weak::upgrade).collect()
        };
        for sum in live {
            sum.fold();
        }
    }
}
