//! ARCHITECTURE.md's rule "modules call only downwards", checked: no two modules under
//! `src/` import each other, directly or around a circle. A module is a file; an import
//! is any `crate::`/`super::`/`self::` path in it (use trees expanded, `pub use`
//! re-exports included; `mod` declarations, `#[cfg(test)]` code and a folder's `mod.rs`
//! using its own submodules left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `src/a/b.rs` -> `a::b`, `src/a/mod.rs` -> `a`.
fn module_of(rel: &Path) -> String {
    let s = rel.with_extension("").to_string_lossy().replace('/', "::");
    s.strip_suffix("::mod").map(String::from).unwrap_or(s)
}

fn files(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, root, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p.strip_prefix(root).unwrap();
            if rel == Path::new("lib.rs") || rel == Path::new("main.rs") {
                continue;
            }
            let text = without_tests(&std::fs::read_to_string(&p).unwrap());
            out.insert(module_of(rel), text);
        }
    }
}

/// The text without `#[cfg(test)]` items (the item's braces matched).
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(open) = after.find('{') else {
            return out;
        };
        let mut depth = 0;
        let mut end = after.len();
        for (j, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = format!("{prefix}{}", &tree[..open]);
        let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
        let inner = &tree[open + 1..close];
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], &head, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &head, out);
    } else if !tree.is_empty() {
        out.push(format!(
            "{prefix}{}",
            tree.split(" as ").next().unwrap().trim()
        ));
    }
}

/// Every path a module names: use trees expanded, plus inline `crate::a::b` paths.
fn paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Use declarations: a line that starts with `use` (or `pub use`), up to its `;`.
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let t = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub(super) "))
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        if let Some(after) = t.strip_prefix("use ") {
            let from = offset + line.len() - after.len();
            if let Some(end) = text[from..].find(';') {
                let tree: String = text[from..from + end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                // `use child::X` (2018 paths) names a submodule like `use self::child::X`;
                // other leading names are crates, which `resolve` does not find.
                let tree = tree.trim_start_matches("::").to_string();
                if tree.starts_with("crate::")
                    || tree.starts_with("super::")
                    || tree.starts_with("self::")
                {
                    expand(&tree, "", &mut out);
                } else {
                    expand(&tree, "self::", &mut out);
                }
            }
        }
        offset += line.len();
    }
    for start in ["crate::", "super::"] {
        let mut rest = text;
        while let Some(i) = rest.find(start) {
            let p: String = rest[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(p.trim_end_matches(':').to_string());
            rest = &rest[i + start.len()..];
        }
    }
    out
}

/// The module a path lands in: the longest prefix that is a module of the crate.
/// `super` is the parent module (`a` for both `a/b.rs` and `a/b/mod.rs`).
fn resolve(from: &str, path: &str, modules: &BTreeMap<String, String>) -> Option<String> {
    let mut segs: Vec<&str> = from.split("::").collect();
    let mut parts = path.split("::").peekable();
    match parts.peek() {
        Some(&"crate") => {
            segs.clear();
            parts.next();
        }
        Some(&"self") => {
            parts.next();
        }
        _ => {}
    }
    for s in parts {
        if s == "super" {
            segs.pop();
        } else {
            segs.push(s);
        }
    }
    while !segs.is_empty() {
        let m = segs.join("::");
        if modules.contains_key(&m) {
            return Some(m);
        }
        segs.pop();
    }
    None
}

#[test]
fn no_module_imports_in_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    files(&root, &root, &mut modules);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in &modules {
        for p in paths(text) {
            // A folder's `mod.rs` using its own submodules is its front door (`pub use`),
            // not an arrow; everything else is.
            if let Some(to) = resolve(m, &p, &modules)
                && &to != m
                && !to.starts_with(&format!("{m}::"))
            {
                edges.entry(m.clone()).or_default().insert(to);
            }
        }
    }
    // Strongly connected components (Tarjan), reported with one circle each.
    let names: Vec<&String> = modules.keys().collect();
    let index_of: BTreeMap<&String, usize> =
        names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let adj: Vec<Vec<usize>> = names
        .iter()
        .map(|n| {
            edges
                .get(*n)
                .map(|s| s.iter().map(|t| index_of[t]).collect())
                .unwrap_or_default()
        })
        .collect();
    struct T<'a> {
        adj: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        sccs: Vec<Vec<usize>>,
    }
    fn visit(t: &mut T, v: usize) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in &t.adj[v].clone() {
            match t.index[w] {
                None => {
                    visit(t, w);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(i) if t.on[w] => t.low[v] = t.low[v].min(i),
                _ => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut c = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                c.push(w);
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                t.sccs.push(c);
            }
        }
    }
    let n = names.len();
    let mut t = T {
        adj: &adj,
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        sccs: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(&mut t, v);
        }
    }
    let report: Vec<String> = t
        .sccs
        .iter()
        .map(|c| {
            let set: BTreeSet<usize> = c.iter().copied().collect();
            let names = &names;
            let arrows: Vec<String> = c
                .iter()
                .flat_map(|&v| {
                    adj[v]
                        .iter()
                        .filter(|w| set.contains(w))
                        .map(move |&w| format!("{} -> {}", names[v], names[w]))
                })
                .collect();
            arrows.join(", ")
        })
        .collect();
    assert!(
        report.is_empty(),
        "modules that import each other (move the shared values down):\n{}",
        report.join("\n")
    );
    // The check sees imports at all: cli imports config.
    assert!(edges["cli"].contains("config"), "{edges:?}");
}
