//! The shape of the source tree, checked: every file under `src/` stays within 600 lines (or says
//! in its first 5 lines why it may not), and no two files import each other, directly or through
//! others. An import is any `crate::`, `super::` or `self::` path, a `use` of one, or a path
//! through a module imported by `use`; a name re-exported by `pub use` counts as an import of the
//! file that defines it, so a re-export hides no cycle. The parser is `syn`; paths inside macro
//! calls are read from their tokens. Run by `cargo nextest run` with the other tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit_mut::VisitMut;

const MAX_LINES: usize = 600;

#[test]
fn every_source_file_is_at_most_600_lines_or_says_why() {
    let mut over = Vec::new();
    for file in rust_files(Path::new("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = text.lines().count();
        let head: String = text.lines().take(5).collect::<Vec<_>>().join("\n");
        if lines > MAX_LINES && !head.contains("600 lines") {
            over.push(format!("{} has {lines} lines", file.display()));
        }
    }
    assert!(
        over.is_empty(),
        "files over {MAX_LINES} lines without a reason in their first 5 lines:\n{}",
        over.join("\n")
    );
}

#[test]
fn no_import_cycles_among_source_files() {
    let graph = ModuleGraph::load(Path::new("src"));
    assert!(
        graph.edges.len() > 50,
        "the import graph looks empty: {} edges",
        graph.edges.len()
    );
    if std::env::var_os("GENSCOPE_PRINT_IMPORTS").is_some() {
        // The folder-level picture ARCHITECTURE.md describes.
        let folder = |f: &str| {
            f.split('/')
                .next()
                .unwrap_or(f)
                .trim_end_matches(".rs")
                .to_string()
        };
        let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, targets) in &graph.edges {
            for to in targets.keys() {
                if folder(from) != folder(to) {
                    folders.entry(folder(from)).or_default().insert(folder(to));
                }
            }
        }
        for (from, to) in &folders {
            println!(
                "{from} -> {}",
                to.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let cycles = graph.cycles();
    let mut message = String::new();
    for cycle in &cycles {
        message.push_str(&format!("{} files import each other:\n", cycle.len()));
        for file in cycle {
            if let Some(path) = graph.shortest_cycle(file, cycle) {
                message.push_str(&format!("  {}\n", path.join("  ->  ")));
            }
        }
    }
    assert!(cycles.is_empty(), "{message}");
}

/// The checker itself: a known cycle and a re-export through a parent are found.
#[test]
fn the_checker_finds_a_cycle_through_a_re_export() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod inner;\npub use inner::Thing;\n").unwrap();
    std::fs::write(
        src.join("a/inner.rs"),
        "pub struct Thing(crate::b::Other);\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "use crate::a::Thing;\npub struct Other;\nfn f(_: Thing) {}\n",
    )
    .unwrap();
    let graph = ModuleGraph::load(src);
    let cycles = graph.cycles();
    assert_eq!(cycles.len(), 1, "{:?}", graph.edges);
    assert_eq!(
        cycles[0],
        BTreeSet::from(["a/inner.rs".to_string(), "b.rs".to_string()])
    );
    // A re-export alone is no dependency of the parent on its child.
    assert!(!graph.edges["a/mod.rs"].contains_key("a/inner.rs"));
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// One module: the file that holds it and what its scope names.
#[derive(Default, Debug)]
struct Module {
    file: String,
    /// Items defined here (types, functions, constants, macros, ...).
    items: BTreeSet<String>,
    /// Child modules, by name, as absolute module paths.
    children: BTreeMap<String, Vec<String>>,
    /// `use` names: local name -> (absolute path, re-exported).
    uses: BTreeMap<String, (Vec<String>, bool)>,
    /// `use path::*` targets.
    globs: Vec<Vec<String>>,
}

struct ModuleGraph {
    /// file -> (imported file -> one path that makes the edge)
    edges: BTreeMap<String, BTreeMap<String, String>>,
}

impl ModuleGraph {
    fn load(root: &Path) -> ModuleGraph {
        let mut modules: HashMap<Vec<String>, Module> = HashMap::new();
        let mut parsed: Vec<(String, Vec<String>, syn::File)> = Vec::new();
        let lib = root.join("lib.rs");
        let mut queue = vec![(lib, Vec::<String>::new())];
        while let Some((file, path)) = queue.pop() {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let rel = file
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let dir = if file
                .file_name()
                .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
            {
                file.parent().unwrap().to_path_buf()
            } else {
                file.with_extension("")
            };
            collect_module(&mut modules, &rel, &path, &ast.items, &dir, &mut queue);
            parsed.push((rel, path, ast));
        }
        let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (rel, path, ast) in &parsed {
            let mut visitor = PathCollector {
                scope: vec![path.clone()],
                found: Vec::new(),
            };
            visitor.visit_file_mut(&mut ast.clone());
            let entry = edges.entry(rel.clone()).or_default();
            for (scope, segments, why) in visitor.found {
                if let Some(target) = resolve_from(&modules, &scope, &segments)
                    && &target != rel
                {
                    entry.entry(target).or_insert(why);
                }
            }
            // Private `use` lines are imports even when nothing names them again (traits).
            for (module_path, module) in modules.iter().filter(|(_, m)| &m.file == rel) {
                for (name, (target, public)) in &module.uses {
                    if !public
                        && let Some(target) = resolve(&modules, target, 0)
                        && &target != rel
                    {
                        let why = format!("use {} in {}", name, module_path.join("::"));
                        entry.entry(target).or_insert(why);
                    }
                }
                for glob in &module.globs {
                    if let Some(target) = resolve(&modules, glob, 0)
                        && &target != rel
                    {
                        let why = format!("use {}::*", glob.join("::"));
                        entry.entry(target).or_insert(why);
                    }
                }
            }
        }
        ModuleGraph { edges }
    }

    /// The shortest import path from `file` back to itself inside `within`, each step with the
    /// path that makes it.
    fn shortest_cycle(&self, file: &str, within: &BTreeSet<String>) -> Option<Vec<String>> {
        let mut previous: HashMap<&str, &str> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([file]);
        while let Some(at) = queue.pop_front() {
            for to in self.edges.get(at).into_iter().flat_map(|e| e.keys()) {
                if !within.contains(to) || previous.contains_key(to.as_str()) {
                    continue;
                }
                previous.insert(to, at);
                if to == file {
                    let mut steps = vec![file.to_string()];
                    let mut cur = file;
                    loop {
                        let from = previous[cur];
                        steps.push(format!("{from} [{}]", self.edges[from][cur]));
                        cur = from;
                        if cur == file {
                            break;
                        }
                    }
                    steps.reverse();
                    return Some(steps);
                }
                queue.push_back(to);
            }
        }
        None
    }

    /// Strongly connected components with more than one file (Tarjan).
    fn cycles(&self) -> Vec<BTreeSet<String>> {
        struct State<'a> {
            graph: &'a BTreeMap<String, BTreeMap<String, String>>,
            index: HashMap<&'a str, usize>,
            low: HashMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on_stack: BTreeSet<&'a str>,
            next: usize,
            out: Vec<BTreeSet<String>>,
        }
        fn connect<'a>(s: &mut State<'a>, v: &'a str) {
            s.index.insert(v, s.next);
            s.low.insert(v, s.next);
            s.next += 1;
            s.stack.push(v);
            s.on_stack.insert(v);
            let graph = s.graph;
            if let Some(targets) = graph.get(v) {
                for w in targets.keys() {
                    let w = w.as_str();
                    if !s.index.contains_key(w) {
                        connect(s, w);
                        let low = s.low[v].min(s.low[w]);
                        s.low.insert(v, low);
                    } else if s.on_stack.contains(w) {
                        let low = s.low[v].min(s.index[w]);
                        s.low.insert(v, low);
                    }
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = BTreeSet::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack.remove(w);
                    component.insert(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    s.out.push(component);
                }
            }
        }
        let mut s = State {
            graph: &self.edges,
            index: HashMap::new(),
            low: HashMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            next: 0,
            out: Vec::new(),
        };
        for v in self.edges.keys() {
            if !s.index.contains_key(v.as_str()) {
                connect(&mut s, v);
            }
        }
        s.out
    }
}

fn collect_module(
    modules: &mut HashMap<Vec<String>, Module>,
    file: &str,
    path: &[String],
    items: &[syn::Item],
    dir: &Path,
    queue: &mut Vec<(PathBuf, Vec<String>)>,
) {
    let mut module = Module {
        file: file.to_string(),
        ..Module::default()
    };
    for item in items {
        match item {
            syn::Item::Mod(m) => {
                let name = m.ident.to_string();
                let mut child = path.to_vec();
                child.push(name.clone());
                module.children.insert(name.clone(), child.clone());
                if let Some((_, inner)) = &m.content {
                    collect_module(modules, file, &child, inner, &dir.join(&name), queue);
                } else {
                    let as_file = dir.join(format!("{name}.rs"));
                    let as_dir = dir.join(&name).join("mod.rs");
                    let target = if as_file.exists() { as_file } else { as_dir };
                    queue.push((target, child));
                }
            }
            syn::Item::Use(u) => {
                let public = !matches!(u.vis, syn::Visibility::Inherited);
                let mut flat = Vec::new();
                flatten_use(&u.tree, Vec::new(), &mut flat);
                for (name, segments) in flat {
                    let Some(absolute) = absolute(path, &segments, &module) else {
                        continue;
                    };
                    match name {
                        Some(name) => {
                            module.uses.insert(name, (absolute, public));
                        }
                        None => module.globs.push(absolute),
                    }
                }
            }
            other => {
                if let Some(name) = item_name(other) {
                    module.items.insert(name);
                }
            }
        }
    }
    modules.insert(path.to_vec(), module);
}

fn item_name(item: &syn::Item) -> Option<String> {
    Some(match item {
        syn::Item::Const(i) => i.ident.to_string(),
        syn::Item::Enum(i) => i.ident.to_string(),
        syn::Item::Fn(i) => i.sig.ident.to_string(),
        syn::Item::Static(i) => i.ident.to_string(),
        syn::Item::Struct(i) => i.ident.to_string(),
        syn::Item::Trait(i) => i.ident.to_string(),
        syn::Item::Type(i) => i.ident.to_string(),
        syn::Item::Union(i) => i.ident.to_string(),
        syn::Item::Macro(i) => i.ident.as_ref()?.to_string(),
        _ => return None,
    })
}

/// `use a::{b, c::d as e, f::*}` -> [(Some("b"), [a, b]), (Some("e"), [a, c, d]), (None, [a, f])].
fn flatten_use(
    tree: &syn::UseTree,
    prefix: Vec<String>,
    out: &mut Vec<(Option<String>, Vec<String>)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            let mut next = prefix;
            next.push(p.ident.to_string());
            flatten_use(&p.tree, next, out);
        }
        syn::UseTree::Name(n) => {
            let mut full = prefix;
            let name = n.ident.to_string();
            if name == "self" {
                let last = full.last().cloned();
                out.push((last, full));
            } else {
                full.push(name.clone());
                out.push((Some(name), full));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut full = prefix;
            full.push(r.ident.to_string());
            out.push((Some(r.rename.to_string()), full));
        }
        syn::UseTree::Glob(_) => out.push((None, prefix)),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix.clone(), out);
            }
        }
    }
}

/// A path as written in module `at` made absolute, or `None` when it leaves the crate.
fn absolute(at: &[String], segments: &[String], module: &Module) -> Option<Vec<String>> {
    let first = segments.first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => at.to_vec(),
        "super" => {
            let mut base = at.to_vec();
            let mut rest = segments;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            return Some(base);
        }
        name if module.children.contains_key(name) => {
            let mut base = at.to_vec();
            base.push(name.to_string());
            base.extend(segments[1..].iter().cloned());
            return Some(base);
        }
        _ => return None,
    };
    base.extend(segments[1..].iter().cloned());
    Some(base)
}

/// The file that defines what an absolute path names.
fn resolve(
    modules: &HashMap<Vec<String>, Module>,
    path: &[String],
    depth: usize,
) -> Option<String> {
    if depth > 16 {
        return None;
    }
    let mut at: Vec<String> = Vec::new();
    for (i, segment) in path.iter().enumerate() {
        let module = modules.get(&at)?;
        if let Some(child) = module.children.get(segment) {
            at = child.clone();
            continue;
        }
        if module.items.contains(segment) {
            return Some(module.file.clone());
        }
        if let Some((target, _)) = module.uses.get(segment) {
            let mut next = target.clone();
            next.extend(path[i + 1..].iter().cloned());
            return resolve(modules, &next, depth + 1);
        }
        for glob in &module.globs {
            let mut next = glob.clone();
            next.extend(path[i..].iter().cloned());
            if let Some(found) = resolve_defined(modules, &next, depth + 1) {
                return Some(found);
            }
        }
        return Some(module.file.clone());
    }
    modules.get(&at).map(|m| m.file.clone())
}

/// Like [`resolve`], but only where the name is really found (for glob candidates).
fn resolve_defined(
    modules: &HashMap<Vec<String>, Module>,
    path: &[String],
    depth: usize,
) -> Option<String> {
    let (last_module, name) = path.split_at(path.len().checked_sub(1)?);
    let mut at: Vec<String> = Vec::new();
    for segment in last_module {
        at = modules.get(&at)?.children.get(segment)?.clone();
    }
    let module = modules.get(&at)?;
    let name = &name[0];
    if module.items.contains(name)
        || module.children.contains_key(name)
        || module.uses.contains_key(name)
    {
        resolve(modules, path, depth)
    } else {
        None
    }
}

/// A path written in module `scope`, resolved to the defining file.
fn resolve_from(
    modules: &HashMap<Vec<String>, Module>,
    scope: &[String],
    segments: &[String],
) -> Option<String> {
    let module = modules.get(scope)?;
    let first = segments.first()?;
    if let Some((target, _)) = module.uses.get(first) {
        let mut next = target.clone();
        next.extend(segments[1..].iter().cloned());
        return resolve(modules, &next, 0);
    }
    let absolute = absolute(scope, segments, module)?;
    resolve(modules, &absolute, 0)
}

/// Every path a file writes, with the module scope it was written in.
struct PathCollector {
    scope: Vec<Vec<String>>,
    found: Vec<(Vec<String>, Vec<String>, String)>,
}

impl PathCollector {
    fn record(&mut self, segments: Vec<String>) {
        if segments.is_empty() {
            return;
        }
        let why = segments.join("::");
        self.found
            .push((self.scope.last().unwrap().clone(), segments, why));
    }
}

impl VisitMut for PathCollector {
    fn visit_item_mod_mut(&mut self, m: &mut syn::ItemMod) {
        if m.content.is_some() {
            let mut inner = self.scope.last().unwrap().clone();
            inner.push(m.ident.to_string());
            self.scope.push(inner);
            syn::visit_mut::visit_item_mod_mut(self, m);
            self.scope.pop();
        }
    }

    // `use` lines are accounted for from the module table (private ones always, re-exports only
    // where a path names them).
    fn visit_item_use_mut(&mut self, _: &mut syn::ItemUse) {}

    // `pub(super)` and `pub(in crate::x)` name a module for visibility, not an import.
    fn visit_visibility_mut(&mut self, _: &mut syn::Visibility) {}

    fn visit_path_mut(&mut self, path: &mut syn::Path) {
        if path.leading_colon.is_none() {
            self.record(path.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        syn::visit_mut::visit_path_mut(self, path);
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        self.visit_path_mut(&mut mac.path);
        let mut tokens: Vec<proc_macro2::TokenTree> = Vec::new();
        flatten_tokens(mac.tokens.clone(), &mut tokens);
        let mut i = 0;
        while i < tokens.len() {
            if let proc_macro2::TokenTree::Ident(id) = &tokens[i] {
                let mut segments = vec![id.to_string()];
                let mut j = i + 1;
                while j + 2 <= tokens.len() {
                    let colons = matches!((&tokens.get(j), &tokens.get(j + 1)),
                        (Some(proc_macro2::TokenTree::Punct(a)), Some(proc_macro2::TokenTree::Punct(b)))
                        if a.as_char() == ':' && b.as_char() == ':');
                    match (colons, tokens.get(j + 2)) {
                        (true, Some(proc_macro2::TokenTree::Ident(next))) => {
                            segments.push(next.to_string());
                            j += 3;
                        }
                        _ => break,
                    }
                }
                if segments.len() > 1 || matches!(segments[0].as_str(), "crate" | "super") {
                    self.record(segments);
                }
                i = j;
            } else {
                i += 1;
            }
        }
    }
}

fn flatten_tokens(stream: proc_macro2::TokenStream, out: &mut Vec<proc_macro2::TokenTree>) {
    for tree in stream {
        match tree {
            proc_macro2::TokenTree::Group(g) => flatten_tokens(g.stream(), out),
            other => out.push(other),
        }
    }
}
