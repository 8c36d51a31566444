//! `OTEL_SEMCONV_STABILITY_OPT_IN`: which version of the GenAI conventions genscope emits.

use std::str::FromStr;

use serde::Deserialize;

/// The GenAI semantic conventions genscope emits. The default is the registry genscope is
/// checked against (v1.41.1); `gen_ai_latest_experimental` in `OTEL_SEMCONV_STABILITY_OPT_IN`
/// (a comma list, as the GenAI conventions' transition plan prescribes; other categories in it,
/// such as `http`, do not concern genscope and are accepted) switches to the names
/// open-telemetry/semantic-conventions-genai is moving to, listed in
/// [`GenAiConventions::LATEST_EXPERIMENTAL_NAMES`] and in `docs/semconv.md`.
///
/// ```
/// use genscope::config::GenAiConventions;
/// assert_eq!(GenAiConventions::default(), GenAiConventions::Default);
/// let v: GenAiConventions = "http, gen_ai_latest_experimental".parse().unwrap();
/// assert_eq!(v, GenAiConventions::LatestExperimental);
/// assert_eq!("http".parse::<GenAiConventions>().unwrap(), GenAiConventions::Default);
/// assert!("gen_ai_latest".parse::<GenAiConventions>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GenAiConventions {
    /// The names of the semantic conventions v1.41.1 (the default).
    #[default]
    Default,
    /// `gen_ai_latest_experimental`: the newer names, instead of the v1.41.1 ones.
    LatestExperimental,
}

/// One name `gen_ai_latest_experimental` changes: what is emitted instead of what, and where
/// the rename comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConventionRename {
    /// The v1.41.1 name (emitted by default).
    pub default: &'static str,
    /// The name emitted with `gen_ai_latest_experimental`.
    pub latest: &'static str,
    /// Whether it names an attribute (else a metric).
    pub attribute: bool,
    /// What it is, and for which operations.
    pub applies_to: &'static str,
    /// The change in open-telemetry/semantic-conventions-genai that makes it, and its state
    /// when genscope followed it.
    pub source: &'static str,
}

impl GenAiConventions {
    /// Every name behind the switch. The semantic-conventions check lists these as documented
    /// exceptions when the switch is on (no released registry defines them yet).
    pub const LATEST_EXPERIMENTAL_NAMES: &'static [ConventionRename] = &[
        ConventionRename {
            default: "gen_ai.client.operation.duration",
            latest: "gen_ai.client.inference.duration",
            attribute: false,
            applies_to: "metric (histogram, s); operations chat, text_completion, generate_content",
            source: "semantic-conventions-genai PR #521 (open, 2026-09)",
        },
        ConventionRename {
            default: "gen_ai.client.operation.duration",
            latest: "gen_ai.client.embeddings.duration",
            attribute: false,
            applies_to: "metric (histogram, s); operation embeddings",
            source: "semantic-conventions-genai issue #249 (the per-operation duration table)",
        },
        ConventionRename {
            default: "gen_ai.client.token.usage",
            latest: "gen_ai.client.inference.usage.input_tokens",
            attribute: false,
            applies_to: "metric (counter, {token}); input tokens, replacing the histogram's gen_ai.token.type=input",
            source: "semantic-conventions-genai PR #374 (open, 2026-08)",
        },
        ConventionRename {
            default: "gen_ai.client.token.usage",
            latest: "gen_ai.client.inference.usage.output_tokens",
            attribute: false,
            applies_to: "metric (counter, {token}); output tokens, replacing the histogram's gen_ai.token.type=output",
            source: "semantic-conventions-genai PR #374 (open, 2026-08)",
        },
        ConventionRename {
            default: "gen_ai.usage.cache_creation.input_tokens",
            latest: "gen_ai.usage.cache_write.input_tokens",
            attribute: true,
            applies_to: "span attribute (int)",
            source: "semantic-conventions-genai PR #440 (merged)",
        },
    ];

    /// Whether the newer names are emitted.
    pub fn latest(self) -> bool {
        self == GenAiConventions::LatestExperimental
    }

    /// The attribute name to emit for a v1.41.1 attribute (itself unless the switch renames it;
    /// metric renames depend on more than the name: see
    /// [`GenAiConventions::client_duration_name`]).
    ///
    /// ```
    /// use genscope::config::GenAiConventions;
    /// let a = "gen_ai.usage.cache_creation.input_tokens";
    /// assert_eq!(GenAiConventions::Default.attribute_name(a), a);
    /// assert_eq!(GenAiConventions::LatestExperimental.attribute_name(a), "gen_ai.usage.cache_write.input_tokens");
    /// assert_eq!(GenAiConventions::LatestExperimental.attribute_name("gen_ai.client.token.usage"), "gen_ai.client.token.usage");
    /// ```
    pub fn attribute_name(self, default: &'static str) -> &'static str {
        if !self.latest() {
            return default;
        }
        Self::LATEST_EXPERIMENTAL_NAMES
            .iter()
            .find(|r| r.attribute && r.default == default)
            .map_or(default, |r| r.latest)
    }

    /// The client duration metric for a `gen_ai.operation.name`.
    ///
    /// ```
    /// use genscope::config::GenAiConventions;
    /// let l = GenAiConventions::LatestExperimental;
    /// assert_eq!(l.client_duration_name("chat"), "gen_ai.client.inference.duration");
    /// assert_eq!(l.client_duration_name("embeddings"), "gen_ai.client.embeddings.duration");
    /// assert_eq!(l.client_duration_name("execute_tool"), "gen_ai.client.operation.duration");
    /// assert_eq!(GenAiConventions::Default.client_duration_name("chat"), "gen_ai.client.operation.duration");
    /// ```
    pub fn client_duration_name(self, operation: &str) -> &'static str {
        match (self.latest(), operation) {
            (true, "chat" | "text_completion" | "generate_content") => {
                "gen_ai.client.inference.duration"
            }
            (true, "embeddings") => "gen_ai.client.embeddings.duration",
            _ => "gen_ai.client.operation.duration",
        }
    }
}

impl FromStr for GenAiConventions {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = GenAiConventions::Default;
        for word in s.split(',').map(str::trim) {
            match word {
                "gen_ai_latest_experimental" => out = GenAiConventions::LatestExperimental,
                w if w.starts_with("gen_ai") => {
                    return Err(format!(
                        "unknown GenAI opt-in {w:?}: the GenAI conventions define \
                         gen_ai_latest_experimental only"
                    ));
                }
                // Other categories (`http`, `http/dup`, `database`, ...) are other
                // instrumentations' business.
                _ => {}
            }
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for GenAiConventions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
