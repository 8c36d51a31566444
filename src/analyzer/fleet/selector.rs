//! `--match`: a brace-enclosed set of label matchers (`{job="gen",pod=~"gen-.*"}`), checked
//! here so that a typo is a clear error before any query, and added to every query.

use super::error::FleetError;

/// A parsed `--match` selector.
///
/// ```
/// use genscope::analyzer::fleet::Selector;
/// let s = Selector::parse(r#"{job="gen", pod=~"gen-.*"}"#).unwrap();
/// assert_eq!(s.matchers(), r#"job="gen",pod=~"gen-.*""#);
/// assert!(Selector::parse(r#"up{job="gen"}"#).is_err());
/// assert!(Selector::parse(r#"{job=gen}"#).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    matchers: Vec<(String, String, String)>,
}

fn bad(reason: impl Into<String>) -> FleetError {
    FleetError::Option {
        option: "--match",
        reason: reason.into(),
    }
}

impl Selector {
    /// Parses `{name OP "value", ...}` with OP one of `=`, `!=`, `=~`, `!~`; no metric name.
    pub fn parse(text: &str) -> Result<Selector, FleetError> {
        let t = text.trim();
        let inner = t
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| {
                bad(format!(
                    "{text:?}: expected label matchers in braces, e.g. '{{job=\"gen\"}}' (no metric name)"
                ))
            })?;
        let mut matchers = Vec::new();
        let mut rest = inner.trim_start();
        while !rest.is_empty() {
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..name_len];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(bad(format!("{text:?}: expected a label name at {rest:?}")));
            }
            if name == "__name__" {
                return Err(bad(format!(
                    "{text:?}: no metric name: the report chooses the metrics"
                )));
            }
            rest = rest[name_len..].trim_start();
            let op = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|op| rest.starts_with(op))
                .ok_or_else(|| bad(format!("{text:?}: expected = != =~ or !~ after {name}")))?;
            rest = rest[op.len()..].trim_start();
            let (value, after) = quoted(rest)
                .ok_or_else(|| bad(format!("{text:?}: the value of {name} must be quoted")))?;
            if op.contains('~') && regex_lite_check(&value).is_err() {
                return Err(bad(format!(
                    "{text:?}: {value:?} is not a valid regular expression"
                )));
            }
            matchers.push((name.to_string(), op.to_string(), value));
            rest = after.trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(bad(format!("{text:?}: expected , between matchers"))),
            }
        }
        Ok(Selector { matchers })
    }

    /// The matchers as PromQL text, without braces (empty when none).
    pub fn matchers(&self) -> String {
        self.matchers
            .iter()
            .map(|(n, op, v)| format!("{n}{op}{}", escape(v)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A selector of the sample names in `names` with these matchers:
    /// `{__name__=~"a|b",job="gen"}`.
    pub(super) fn query(&self, names: &[String]) -> String {
        let alternatives: Vec<String> = names.iter().map(|n| regex_escape(n)).collect();
        let mut q = format!("{{__name__=~{}", escape(&alternatives.join("|")));
        let m = self.matchers();
        if !m.is_empty() {
            q.push(',');
            q.push_str(&m);
        }
        q.push('}');
        q
    }
}

/// A double-quoted PromQL string: its value and the text after it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let quote = s.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c if c == quote => return Some((out, &s[1 + i + 1..])),
            c => out.push(c),
        }
    }
    None
}

fn escape(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Metric names may hold `:`; everything RE2 treats specially is escaped.
fn regex_escape(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A light check of a regular expression: balanced brackets and parentheses, no trailing
/// backslash (the backend has the last word; this catches typos before any query).
fn regex_lite_check(re: &str) -> Result<(), ()> {
    let (mut parens, mut in_class, mut chars) = (0i32, false, re.chars());
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next().ok_or(())?;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => parens += 1,
            ')' if !in_class => {
                parens -= 1;
                if parens < 0 {
                    return Err(());
                }
            }
            _ => {}
        }
    }
    if parens == 0 && !in_class {
        Ok(())
    } else {
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse_and_print() {
        let s = Selector::parse(r#"{ job = "gen" , env!="dev",pod!~'a\'b', x=~"(a|b)" }"#).unwrap();
        assert_eq!(
            s.matchers(),
            r#"job="gen",env!="dev",pod!~"a'b",x=~"(a|b)""#
        );
        assert_eq!(
            s.query(&[
                "vllm:e2e_request_latency_seconds_bucket".into(),
                "a_total".into()
            ]),
            r#"{__name__=~"vllm:e2e_request_latency_seconds_bucket|a_total",job="gen",env!="dev",pod!~"a'b",x=~"(a|b)"}"#
        );
        assert_eq!(Selector::parse("{}").unwrap().matchers(), "");
        for bad in [
            "job=\"a\"",
            "{job=\"a\"",
            "{job}",
            "{job==\"a\"}",
            "{job=\"a\" env=\"b\"}",
            "{__name__=\"up\"}",
            "{1a=\"b\"}",
            "{a=~\"(b\"}",
            "{a=\"unterminated}",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }
}
