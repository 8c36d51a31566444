//! [`OperationKind`], what `genscope.operation.type` an operation has, and [`GenerationTask`],
//! what a generation operation describes.

use std::borrow::Cow;
use std::fmt;

/// The kind of an operation (`genscope.operation.type`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OperationKind {
    /// `download`: model weights, datasets, artifacts.
    Download,
    /// `health_check`: a probe of a model or backend.
    HealthCheck,
    /// `fallback_strategy`: switching to another model or backend.
    FallbackStrategy,
    /// `analytics_collection`: gathering usage or quality statistics.
    AnalyticsCollection,
    /// `model_operation`: load, unload, warm-up, compile, quantize.
    ModelOperation,
    /// `generation`: producing text, images, audio or video.
    Generation,
    /// A kind of the user's, made with [`OperationKind::custom`].
    Custom(Cow<'static, str>),
}

/// A custom operation kind was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid operation kind {kind:?}: {reason}; use 1 to 64 characters of a-z, 0-9, '_' or '.', starting with a letter"
)]
pub struct OperationKindError {
    /// The refused value.
    pub kind: String,
    /// Why.
    pub reason: &'static str,
}

impl OperationKind {
    /// A user-defined kind (`batch_embedding`, `cache.warmup`); the built-in names map to their
    /// variants.
    ///
    /// ```
    /// use genscope::operations::OperationKind;
    /// assert_eq!(OperationKind::custom("download")?, OperationKind::Download);
    /// assert_eq!(OperationKind::custom("cache.warmup")?.as_str(), "cache.warmup");
    /// assert!(OperationKind::custom("Cache Warmup").is_err());
    /// # Ok::<(), genscope::operations::OperationKindError>(())
    /// ```
    pub fn custom(kind: impl Into<Cow<'static, str>>) -> Result<Self, OperationKindError> {
        let kind = kind.into();
        let err = |reason| OperationKindError {
            kind: kind.to_string(),
            reason,
        };
        if kind.is_empty() || kind.len() > 64 {
            return Err(err("length must be 1 to 64"));
        }
        if !kind.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(err("must start with a lowercase letter"));
        }
        if !kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        {
            return Err(err("contains a character other than a-z, 0-9, '_' or '.'"));
        }
        Ok(match kind.as_ref() {
            "download" => OperationKind::Download,
            "health_check" => OperationKind::HealthCheck,
            "fallback_strategy" => OperationKind::FallbackStrategy,
            "analytics_collection" => OperationKind::AnalyticsCollection,
            "model_operation" => OperationKind::ModelOperation,
            "generation" => OperationKind::Generation,
            _ => OperationKind::Custom(kind),
        })
    }

    /// The attribute value.
    pub fn as_str(&self) -> &str {
        match self {
            OperationKind::Download => "download",
            OperationKind::HealthCheck => "health_check",
            OperationKind::FallbackStrategy => "fallback_strategy",
            OperationKind::AnalyticsCollection => "analytics_collection",
            OperationKind::ModelOperation => "model_operation",
            OperationKind::Generation => "generation",
            OperationKind::Custom(s) => s,
        }
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a generation task produces, for [`Operations::generation`](crate::operations::Operations::generation) (the seeds'
/// `start_task_monitoring(task_id, model_type, resolution, steps)`).
///
/// ```
/// let task = genscope::operations::GenerationTask::new("image", "sdxl-1.0")
///     .resolution(1024, 1024)
///     .steps(30);
/// # drop(task);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationTask {
    pub(super) model_type: String,
    pub(super) model: String,
    pub(super) resolution: Option<(u32, u32)>,
    pub(super) steps: Option<u32>,
}

impl GenerationTask {
    /// A task for `model` of `model_type` (`llm`, `image`, `video`, `audio`).
    pub fn new(model_type: impl Into<String>, model: impl Into<String>) -> Self {
        GenerationTask {
            model_type: model_type.into(),
            model: model.into(),
            resolution: None,
            steps: None,
        }
    }
    /// Output resolution in pixels (`genscope.generation.resolution` = `WxH`).
    pub fn resolution(mut self, width: u32, height: u32) -> Self {
        self.resolution = Some((width, height));
        self
    }
    /// Planned denoising steps or frames (`genscope.generation.steps`).
    pub fn steps(mut self, steps: u32) -> Self {
        self.steps = Some(steps);
        self
    }
}
