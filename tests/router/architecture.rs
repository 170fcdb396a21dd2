//! Guards the crate's module layout, so the folder tree reads the way a request travels:
//! app → edge → proxy → routing → upstream, with `record` and `observe` below them and the
//! leaves (config, wire format, errors, names) at the bottom; `tools` never reach into
//! `edge`, `proxy` or `app`. Each top-level module uses only what the table below allows,
//! there are no import cycles, every file says its job, and `src/lib.rs` lists every folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The bottom layer: they may use each other and nothing else.
const LEAVES: [&str; 7] = [
    "config", "prompts", "openai", "error", "names", "secret", "files",
];

/// The layers above the leaves and what each may use besides the leaves and itself.
/// `app` is the top and may use everything.
#[rustfmt::skip]
const LAYERS: &[(&str, &[&str])] = &[
    ("record", &[]),
    ("observe", &["record"]),
    ("upstream", &["record"]),
    ("routing", &["upstream", "record"]),
    ("proxy", &["routing", "upstream", "record"]),
    ("tools", &["routing", "upstream", "record"]),
    ("edge", &["proxy", "routing", "upstream", "record", "observe"]),
    ("app", &[]),
];

/// One reference `(file, from, to)`: a file in top-level module `from` uses module `to`.
type Edge = (String, String, String);

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `src/**/*.rs` as (`src/a/b.rs`, text), sorted by path.
fn sources() -> Vec<(String, String)> {
    let (mut dirs, mut files) = (vec![src_dir()], Vec::new());
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a folder under src/") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
                let rel = rel.to_string_lossy().replace('\\', "/");
                files.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// Top-level modules as found on disk: every `src/X.rs` and `src/X/` but `lib` and `main`.
fn modules_on_disk() -> BTreeSet<String> {
    let entries = std::fs::read_dir(src_dir()).expect("read src/");
    let names = entries.map(|e| e.unwrap().path()).filter_map(|p| {
        let is_rs = p.extension().is_some_and(|e| e == "rs");
        (p.is_dir() || is_rs).then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
    });
    names.filter(|n| n != "lib" && n != "main").collect()
}

/// What top-level module `module` may use, or `None` when the table does not know it.
fn may_use(module: &str) -> Option<BTreeSet<&'static str>> {
    let mut allowed: BTreeSet<&str> = LEAVES.into_iter().collect();
    if module == "app" {
        allowed.extend(LAYERS.iter().map(|(name, _)| *name));
    } else if !LEAVES.contains(&module) {
        let (_, uses) = LAYERS.iter().find(|(name, _)| *name == module)?;
        allowed.extend(uses.iter());
    }
    Some(allowed)
}

/// `src/a/b.rs` is module `a::b`; `src/a/mod.rs` and `src/a.rs` are `a`. `None` for the
/// crate roots `src/lib.rs` and `src/main.rs`, which are exempt.
fn module_path(rel: &str) -> Option<Vec<&str>> {
    let mut path: Vec<&str> = rel
        .strip_prefix("src/")?
        .strip_suffix(".rs")?
        .split('/')
        .collect();
    if path.last() == Some(&"mod") {
        path.pop();
    }
    (path != ["lib"] && path != ["main"]).then_some(path)
}

/// The text that is scanned: `//` comments (doc comments too) cut off each line, and
/// everything from `#[cfg(test)]` followed by `mod tests {` to the end of the file, since
/// unit tests may reach anywhere. Strings are not parsed: a `//` inside one cuts its line,
/// and a `crate::x` inside one counts as a reference.
fn scanned_text(text: &str) -> String {
    let mut code: String = text
        .lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .fold(String::new(), |acc, line| acc + line + "\n");
    let tests = code.match_indices("#[cfg(test)]").find(|(at, attr)| {
        let after = &code[at + attr.len()..];
        after.trim_start().starts_with("mod tests {")
    });
    if let Some((at, _)) = tests {
        code.truncate(at);
    }
    code
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn ident(text: &str) -> &str {
    &text[..text.find(|c| !is_ident(c)).unwrap_or(text.len())]
}

/// Names right after the crate root: `NAME` from `NAME::…`, or the first segment of each
/// item in a `{A, B::c, d::{e, f}, self}` group (skipping `self`).
fn names_at_root(rest: &str) -> Vec<&str> {
    if !rest.starts_with('{') {
        return vec![ident(rest)];
    }
    let (mut names, mut depth, mut item_start) = (Vec::new(), 0, true);
    for (at, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => break,
            '}' => depth -= 1,
            ',' if depth == 1 => item_start = true,
            c if c.is_whitespace() => {}
            c if depth == 1 && item_start && is_ident(c) => {
                names.push(ident(&rest[at..]));
                item_start = false;
            }
            _ if depth == 1 => item_start = false,
            _ => {}
        }
    }
    names.retain(|name| *name != "self");
    names
}

/// Top-level names that code at module depth `depth` reaches: every `crate::` path and
/// `use crate::{…}` group, and every `super::super::…` chain long enough to climb to the
/// crate root. A `super::` inside an inline `mod` is read as if it were at the file's level.
fn referenced_names(code: &str, depth: usize) -> BTreeSet<&str> {
    let mut names = BTreeSet::new();
    for (at, _) in code.char_indices() {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue; // the middle of a longer path or identifier
        }
        let rest = &code[at..];
        let at_root = if let Some(after) = rest.strip_prefix("crate::") {
            Some(after)
        } else {
            let supers = rest.len() - rest.trim_start_matches("super::").len();
            (supers > 0 && supers / "super::".len() == depth).then(|| &rest[supers..])
        };
        names.extend(at_root.into_iter().flat_map(names_at_root));
    }
    names
}

/// Every reference between two different top-level modules, from every file but the roots.
/// Names that are not top-level modules on disk (root re-exports like `crate::serve`) are
/// no edge.
fn edges(modules: &BTreeSet<String>) -> Vec<Edge> {
    let mut edges = Vec::new();
    for (file, text) in sources() {
        let Some(path) = module_path(&file) else {
            continue;
        };
        let code = scanned_text(&text);
        for to in referenced_names(&code, path.len()) {
            if modules.contains(to) && to != path[0] {
                edges.push((file.clone(), path[0].to_owned(), to.to_owned()));
            }
        }
    }
    edges
}

#[test]
fn dependencies_point_down() {
    let modules = modules_on_disk();
    let unknown = modules.iter().filter(|m| may_use(m).is_none());
    let mut problems: Vec<String> = unknown
        .map(|m| format!("src/{m}: top-level module `{m}` is not in the layer table; add it to LAYERS in tests/router/architecture.rs (what it may use) and to `# Layout` in src/lib.rs"))
        .collect();
    for (file, from, to) in edges(&modules) {
        let allowed = may_use(&from).unwrap_or_default();
        if !allowed.contains(to.as_str()) {
            let allowed = allowed.into_iter().collect::<Vec<_>>().join(", ");
            problems.push(format!(
                "{file}: {from} uses {to} ({from} may use: {allowed})"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "dependencies must point down the layers; move the code down, or pass the lower layer the part it needs (a value, a trait, a callback):\n{}",
        problems.join("\n")
    );
}

/// Each group of modules that reach each other (a strongly connected component of more
/// than one), with the edges inside it and the first file that makes each edge.
fn cycles(edges: &[Edge]) -> Vec<String> {
    let mut first_file: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for (file, from, to) in edges {
        first_file.entry((from, to)).or_insert(file);
    }
    let reach = |from: &str| {
        let (mut seen, mut stack) = (BTreeSet::new(), vec![from]);
        while let Some(m) = stack.pop() {
            for &(_, next) in first_file.keys().filter(|(f, _)| *f == m) {
                if seen.insert(next) {
                    stack.push(next);
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&str, BTreeSet<&str>> = first_file
        .keys()
        .map(|(from, _)| (*from, reach(from)))
        .collect();
    let groups: BTreeSet<Vec<&str>> = reaches
        .iter()
        .map(|(m, reached)| {
            let back = |o: &&str| reaches.get(o).is_some_and(|r| r.contains(m));
            reached.iter().copied().filter(back).collect::<Vec<_>>()
        })
        .filter(|group| group.len() > 1)
        .collect();
    let inside = |group: &[&str]| {
        let edges = first_file
            .iter()
            .filter(|((f, t), _)| group.contains(f) && group.contains(t));
        edges
            .map(|((f, t), file)| format!("{f} -> {t} ({file})"))
            .collect::<Vec<_>>()
    };
    let describe = |g: &Vec<&str>| format!("{}: {}", g.join(" <-> "), inside(g).join("; "));
    groups.iter().map(describe).collect()
}

#[test]
fn no_import_cycles_among_top_level_modules() {
    let cycles = cycles(&edges(&modules_on_disk()));
    assert!(
        cycles.is_empty(),
        "top-level modules must not use each other in a circle; move the shared part into the lower module, or into a leaf both may use:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn every_module_says_its_job() {
    let sources = sources().into_iter();
    let missing: Vec<String> = sources
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(file, _)| file)
        .collect();
    assert!(
        missing.is_empty(),
        "every file under src/ starts with a `//!` doc of 1-3 lines saying its one job; add one to:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_layout_list_names_every_folder() {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let docs = lib
        .lines()
        .map_while(|l| l.trim_start().strip_prefix("//!"));
    let mut section = docs.map(str::trim).skip_while(|l| *l != "# Layout");
    let found = section.next().is_some();
    assert!(
        found,
        "src/lib.rs needs a `//! # Layout` section listing every top-level module"
    );
    let layout: Vec<&str> = section.take_while(|l| !l.starts_with('#')).collect();
    let layout = layout.join("\n");
    let missing: Vec<String> = modules_on_disk()
        .into_iter()
        .filter(|m| !layout.contains(&format!("`{m}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "the `# Layout` section of src/lib.rs must name every top-level module in backticks, with its job and where it sits; missing: {}",
        missing.join(", ")
    );
}
