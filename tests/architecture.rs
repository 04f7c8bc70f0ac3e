//! Arrows point down (STYLE.md): no module imports one that imports it back, directly or around
//! a loop; `domain` and `config` sit at the bottom of the gateway; `wecom-api` knows nothing of
//! the gateway. Read from the source, so a `use` that breaks the shape fails here, not in a
//! review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without its `mod tests { ... }` (tests may reach
/// anywhere).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `crate::a::...`, `crate::{a, b::c}`, `super::x`, `super::super::y`: the module paths a
/// file names, resolved from its own path (`["config", "model"]`).
fn references(module: &[String], code: &str) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let ident_end = |from: usize| {
        from + code[from..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(code.len() - from)
    };
    let mut i = 0;
    while i < code.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let (mut base, mut at) = if starts_word && bytes[i..].starts_with(b"crate::") {
            (Vec::new(), i + "crate::".len())
        } else if starts_word && bytes[i..].starts_with(b"super::") {
            (module[..module.len() - 1].to_vec(), i + "super::".len())
        } else {
            i += 1;
            continue;
        };
        while bytes[at..].starts_with(b"super::") {
            base.pop();
            at += "super::".len();
        }
        let names: Vec<String> = if code[at..].starts_with('{') {
            let end = at + code[at..].find('}').unwrap_or(code.len() - at);
            code[at + 1..end]
                .split(',')
                .map(|s| s.trim().split("::").next().unwrap_or("").trim().to_owned())
                .collect()
        } else {
            vec![code[at..ident_end(at)].to_owned()]
        };
        for n in names.into_iter().filter(|n| !n.is_empty() && n != "self") {
            let mut path = base.clone();
            path.push(n);
            out.insert(path);
        }
        i = at;
    }
    out
}

/// Module path of a file under `src`: `config/mod.rs` is `config`, `config/model.rs` is
/// `config::model`; `None` for the crate root and for test-only files.
fn module_of(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.last().map(String::as_str) {
        None | Some("lib" | "main" | "tests") => None,
        _ => Some(parts),
    }
}

/// Edges between the modules of one level: the children of `parent` (`&[]`: the top level),
/// a reference to a deeper item counting for the child that holds it. A parent's own file
/// (`mod.rs`) is not one of its children: children use what their parent defines.
fn graph(src: &Path, parent: &[String]) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g = Graph::new();
    for file in files {
        let Some(module) = module_of(src, &file) else {
            continue;
        };
        if module.len() <= parent.len() || module[..parent.len()] != *parent {
            continue;
        }
        let from = module[parent.len()].clone();
        let code = code(&std::fs::read_to_string(&file).unwrap());
        let entry = g.entry(from.clone()).or_default();
        for r in references(&module, &code) {
            if r.len() > parent.len() && r[..parent.len()] == *parent {
                let to = &r[parent.len()];
                if *to != from {
                    entry.insert(to.clone());
                }
            }
        }
    }
    // Only edges between modules of this level (not to items such as `crate::Secret`).
    let known: BTreeSet<String> = g.keys().cloned().collect();
    for edges in g.values_mut() {
        edges.retain(|e| known.contains(e));
    }
    g
}

/// A loop of modules, if there is one.
fn cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, m, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn no_module_of_the_gateway_or_the_client_imports_one_that_imports_it_back() {
    let levels: &[(&str, &[&str])] = &[
        ("src", &[]),
        ("src", &["config"]),
        ("src", &["login"]),
        ("src", &["jssdk"]),
        ("src", &["qyapi"]),
        ("wecom-api/src", &[]),
        ("wecom-api/src", &["store"]),
    ];
    for (dir, parent) in levels {
        let parent: Vec<String> = parent.iter().map(|s| s.to_string()).collect();
        let g = graph(&root().join(dir), &parent);
        assert!(g.len() > 1, "{dir} {parent:?}: no modules found");
        if let Some(c) = cycle(&g) {
            panic!(
                "{dir} {parent:?}: modules import each other: {}",
                c.join(" -> ")
            );
        }
    }
}

#[test]
fn domain_and_config_are_at_the_bottom_of_the_gateway() {
    let g = graph(&root().join("src"), &[]);
    let below = |m: &str| g[m].iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        below("domain"),
        Vec::<String>::new(),
        "domain imports nothing of the gateway"
    );
    assert_eq!(
        below("config"),
        ["domain"],
        "config knows no feature module"
    );
}

#[test]
fn the_client_crate_knows_nothing_of_the_gateway() {
    let manifest = std::fs::read_to_string(root().join("wecom-api/Cargo.toml")).unwrap();
    assert!(!manifest.contains("path = \"..\""), "{manifest}");
    let mut files = Vec::new();
    rust_files(&root().join("wecom-api/src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("wecom_gateway"), "{}", f.display());
    }
}

#[test]
fn the_reference_reader_sees_what_the_checks_rely_on() {
    let m = |s: &str| s.split("::").map(str::to_owned).collect::<Vec<_>>();
    let refs = references(
        &m("config::model"),
        "use crate::{domain::App, provider};\nuse super::rules::Rules;\nx: super::super::login::Y;\nmy_crate::nope;",
    );
    let want: BTreeSet<Vec<String>> = [m("domain"), m("provider"), m("config::rules"), m("login")]
        .into_iter()
        .collect();
    assert_eq!(refs, want);
    let g: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .iter()
        .map(|(x, y)| (x.to_string(), BTreeSet::from([y.to_string()])))
        .collect();
    assert_eq!(cycle(&g).unwrap().len(), 4);
}
