//! The semantic-conventions registry as the check needs it, read from the Weaver YAML format: every
//! attribute with its type and whether it is deprecated, every metric with its instrument and unit.
//! Written here (a few screens over `yaml-rust2`) because OTel Weaver is not in the package
//! registries; it reads the fields Weaver's `registry live-check` compares and nothing else.

use std::collections::BTreeMap;
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

/// An attribute definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// `string`, `int`, `double`, `boolean`, `string[]`, ... (enums: their members' type).
    pub kind: String,
    /// Enum member values, when it is an enum.
    pub members: Vec<String>,
    pub deprecated: bool,
    pub brief: String,
}

/// A requirement level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Required,
    ConditionallyRequired,
    Recommended,
    OptIn,
}

fn level(y: &Yaml) -> Level {
    match y {
        Yaml::String(s) if s == "required" => Level::Required,
        Yaml::String(s) if s == "opt_in" => Level::OptIn,
        Yaml::Hash(h)
            if h.keys()
                .any(|k| k.as_str() == Some("conditionally_required")) =>
        {
            Level::ConditionallyRequired
        }
        // `recommended`, `{recommended: ...}`, or absent (the default level).
        _ => Level::Recommended,
    }
}

/// A metric definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// `counter`, `updowncounter`, `gauge`, `histogram`.
    pub instrument: String,
    pub unit: String,
    pub deprecated: bool,
    /// Its attributes with their requirement levels, `extends` resolved.
    pub attributes: BTreeMap<String, Level>,
}

/// A group's own attribute references and what it extends, before resolution.
#[derive(Debug, Default, Clone)]
struct Group {
    extends: Option<String>,
    attributes: Vec<(String, Level)>,
}

/// One or more registries merged.
#[derive(Debug, Default)]
pub struct Registry {
    pub attributes: BTreeMap<String, Attribute>,
    pub metrics: BTreeMap<String, Metric>,
    /// Files read, for the report.
    pub files: usize,
    groups: BTreeMap<String, Group>,
    /// Metric name to group id, resolved into `metrics[..].attributes` by `resolve`.
    metric_groups: BTreeMap<String, String>,
}

fn text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn attribute_type(t: &Yaml) -> (String, Vec<String>) {
    match t {
        Yaml::String(s) => (s.clone(), Vec::new()),
        Yaml::Hash(_) => {
            let members: Vec<&Yaml> = t["members"]
                .as_vec()
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            let values: Vec<String> = members.iter().filter_map(|m| text(&m["value"])).collect();
            let int = members
                .iter()
                .all(|m| matches!(m["value"], Yaml::Integer(_)))
                && !members.is_empty();
            ((if int { "int" } else { "string" }).to_string(), values)
        }
        _ => (String::new(), Vec::new()),
    }
}

/// The text without its `examples:` entries: the check does not need them, and some are flow
/// sequences whose closing bracket sits at the key's indentation, which `yaml-rust2` (stricter
/// than libyaml) refuses.
fn without_examples(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut skipping: Option<usize> = None;
    for line in src.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(at) = skipping {
            if line.trim().is_empty() || indent > at || line.trim_start().starts_with(']') {
                continue;
            }
            skipping = None;
        }
        let t = line.trim_start().trim_start_matches("- ");
        if t.starts_with("examples:") {
            skipping = Some(indent);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl Registry {
    /// Reads every `*.yaml` under `root` (recursively).
    pub fn load(root: &Path) -> Result<Registry, String> {
        let mut r = Registry::default();
        r.add(root)?;
        r.resolve();
        Ok(r)
    }

    /// Adds every `*.yaml` under `root`; later definitions of a name do not replace earlier ones.
    pub fn add(&mut self, root: &Path) -> Result<(), String> {
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    let src = std::fs::read_to_string(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let docs = YamlLoader::load_from_str(&without_examples(&src))
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    for doc in &docs {
                        self.read_groups(doc);
                    }
                    self.files += 1;
                }
            }
        }
        self.resolve();
        Ok(())
    }

    /// Every attribute reference of every group: (group id, attribute), and every `extends`
    /// target as (group id, `extends:` target).
    pub fn references(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (id, g) in &self.groups {
            out.extend(g.attributes.iter().map(|(a, _)| (id.clone(), a.clone())));
            if let Some(e) = &g.extends {
                out.push((id.clone(), format!("extends:{e}")));
            }
        }
        out
    }

    /// Whether a group of that id was read.
    pub fn has_group(&self, id: &str) -> bool {
        self.groups.contains_key(id)
    }

    /// The attributes of `group` and of what it extends, the nearest definition winning.
    fn group_attributes(&self, id: &str, depth: usize, out: &mut BTreeMap<String, Level>) {
        let Some(g) = self.groups.get(id) else { return };
        for (a, l) in &g.attributes {
            out.entry(a.clone()).or_insert(*l);
        }
        if let Some(parent) = &g.extends
            && depth < 16
        {
            self.group_attributes(parent, depth + 1, out);
        }
    }

    fn resolve(&mut self) {
        let pairs: Vec<(String, String)> = self
            .metric_groups
            .iter()
            .map(|(m, g)| (m.clone(), g.clone()))
            .collect();
        for (metric, group) in pairs {
            let mut attrs = BTreeMap::new();
            self.group_attributes(&group, 0, &mut attrs);
            if let Some(m) = self.metrics.get_mut(&metric) {
                m.attributes = attrs;
            }
        }
    }

    fn read_groups(&mut self, doc: &Yaml) {
        for g in doc["groups"].as_vec().into_iter().flatten() {
            let group_deprecated = !g["deprecated"].is_badvalue() && !g["deprecated"].is_null();
            if let Some(id) = g["id"].as_str() {
                let group = Group {
                    extends: g["extends"].as_str().map(str::to_string),
                    attributes: g["attributes"]
                        .as_vec()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| {
                            let key = a["ref"].as_str().or_else(|| a["id"].as_str())?;
                            Some((key.to_string(), level(&a["requirement_level"])))
                        })
                        .collect(),
                };
                self.groups.entry(id.to_string()).or_insert(group);
            }
            for a in g["attributes"].as_vec().into_iter().flatten() {
                let Some(id) = a["id"].as_str() else { continue };
                let (kind, members) = attribute_type(&a["type"]);
                let deprecated = !a["deprecated"].is_badvalue() && !a["deprecated"].is_null();
                self.attributes.entry(id.to_string()).or_insert(Attribute {
                    kind,
                    members,
                    deprecated: deprecated || group_deprecated,
                    brief: a["brief"].as_str().unwrap_or_default().trim().to_string(),
                });
            }
            if g["type"].as_str() == Some("metric")
                && let Some(name) = g["metric_name"].as_str()
                && !self.metrics.contains_key(name)
            {
                self.metrics.insert(
                    name.to_string(),
                    Metric {
                        instrument: g["instrument"].as_str().unwrap_or_default().to_string(),
                        unit: g["unit"].as_str().unwrap_or_default().to_string(),
                        deprecated: group_deprecated,
                        attributes: BTreeMap::new(),
                    },
                );
                if let Some(id) = g["id"].as_str() {
                    self.metric_groups.insert(name.to_string(), id.to_string());
                }
            }
        }
    }
}
