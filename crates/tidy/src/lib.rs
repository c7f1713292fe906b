//! The architecture's rules as code, in the manner of rust-analyzer's tidy
//! test: `docs/ARCHITECTURE.md` states each rule on a line that starts with
//! "Architecture invariant:", and `tests/tidy.rs` reads those lines and walks
//! the sources, naming every violation with its file and line. A rule kept
//! only in prose does not last; one the test cannot read fails the test.
//!
//! Three kinds of rule are understood:
//!
//! * `` `A` does not import `B` ``: A is a crate (`server`, the directory
//!   under `crates/`) or one of its top-level modules (`server::service`); B
//!   is a module of the same crate (`server::http`), another crate of the
//!   workspace (`store`) or an outside crate (`axum`).
//! * ``no import circle inside `A` ``: between A's top-level modules.
//! * ``every top-level module opens with a `//!` paragraph``.
//! * ``no function is longer than N lines`` (outside tests).
//!
//! Imports are read from the text: `crate::m`, `use crate::{m, …}` and
//! `super::m` in top-level files, other crates by their path. Comments and a
//! file's `#[cfg(test)]` tail are left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One rule, with the line of `ARCHITECTURE.md` that states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    NoImport { from: ModPath, to: String, line: usize },
    NoCircle { krate: String, line: usize },
    ModuleDocs { line: usize },
    FunctionLength { max: usize, line: usize },
}

/// A crate, or one of its top-level modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModPath {
    pub krate: String,
    pub module: Option<String>,
}

impl ModPath {
    fn parse(s: &str) -> Self {
        match s.split_once("::") {
            Some((k, m)) => Self { krate: k.to_string(), module: Some(m.to_string()) },
            None => Self { krate: s.to_string(), module: None },
        }
    }
}

const MARK: &str = "Architecture invariant:";

/// The rules stated in `doc`; an invariant line in no form the test knows is
/// an error, so that no rule is written and silently left unchecked.
pub fn rules(doc: &str) -> Result<Vec<Rule>, String> {
    let mut out = Vec::new();
    for (i, text) in doc.lines().enumerate() {
        let line = i + 1;
        let Some(at) = text.find(MARK) else { continue };
        let rule = text[at + MARK.len()..].trim();
        // A parenthesis after the rule explains it and is not read.
        let stated = rule.split(" (").next().unwrap_or(rule);
        let quoted: Vec<&str> = stated.split('`').skip(1).step_by(2).collect();
        if rule.contains("does not import") && quoted.len() == 2 {
            out.push(Rule::NoImport { from: ModPath::parse(quoted[0]), to: quoted[1].to_string(), line });
        } else if rule.starts_with("no import circle inside") && quoted.len() == 1 {
            out.push(Rule::NoCircle { krate: quoted[0].to_string(), line });
        } else if rule.starts_with("every top-level module opens with") {
            out.push(Rule::ModuleDocs { line });
        } else if let Some(max) = rule
            .strip_prefix("no function is longer than ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
        {
            out.push(Rule::FunctionLength { max, line });
        } else {
            return Err(format!("ARCHITECTURE.md:{line}: an invariant the tidy test cannot check: {rule}"));
        }
    }
    Ok(out)
}

/// A source file of a crate, read once.
struct Source {
    path: PathBuf,
    /// The top-level module it belongs to (`None` for lib.rs / main.rs).
    module: Option<String>,
    /// Whether it is the file of that module itself (`m.rs`, `m/mod.rs`).
    top: bool,
    /// Lines with comments and the `#[cfg(test)]` tail blanked out.
    code: Vec<String>,
    text: String,
}

fn sources(krate_dir: &Path) -> Vec<Source> {
    let src = krate_dir.join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let rel = path.strip_prefix(&src).ok()?.to_path_buf();
            let parts: Vec<String> =
                rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
            let (module, top) = match parts.as_slice() {
                [one] if one == "lib" || one == "main" => (None, true),
                [one] => (Some(one.clone()), true),
                [dir, file] => (Some(dir.clone()), file == "mod"),
                [dir, ..] => (Some(dir.clone()), false),
                [] => return None,
            };
            Some(Source { code: code_lines(&text), path, module, top, text })
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The lines of a file as code: comments and the insides of string and
/// character literals left out (so that neither a brace nor a path in them
/// counts), and nothing from the first `#[cfg(test)]` on.
fn code_lines(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = vec![String::new()];
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied();
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                out.push(String::new());
                i += 1;
            }
            '/' if at(i + 1) == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == Some('*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && at(i + 1) == Some('/')) {
                    if chars[i] == '\n' {
                        out.push(String::new());
                    }
                    i += 1;
                }
                i += 2;
            }
            // r"…", r#"…"#: no escapes, ends at the quote and as many #.
            'r' if (at(i + 1) == Some('"') || at(i + 1) == Some('#'))
                && !i.checked_sub(1).and_then(at).is_some_and(|p| p.is_alphanumeric() || p == '_') =>
            {
                let hashes = chars[i + 1..].iter().take_while(|&&x| x == '#').count();
                if at(i + 1 + hashes) != Some('"') {
                    push(&mut out, c);
                    i += 1;
                    continue;
                }
                i += 2 + hashes;
                while i < chars.len() && !(chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|&x| x == '#')) {
                    if chars[i] == '\n' {
                        out.push(String::new());
                    }
                    i += 1;
                }
                i += 1 + hashes;
                push_str(&mut out, "\"\"");
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\n' {
                        out.push(String::new());
                    }
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                push_str(&mut out, "\"\"");
            }
            // 'x' and '\n', '\'' or '\u{7b}'; a lifetime ('a) has no closing quote.
            '\'' if at(i + 2) == Some('\'') && at(i + 1) != Some('\\') => i += 3,
            '\'' if at(i + 1) == Some('\\') => {
                i = chars[i + 3..].iter().position(|&x| x == '\'').map_or(chars.len(), |p| i + 4 + p);
            }
            _ => {
                push(&mut out, c);
                i += 1;
            }
        }
    }
    if let Some(tests) = text.lines().position(|l| l.trim_start().starts_with("#[cfg(test)]")) {
        for l in out.iter_mut().skip(tests) {
            l.clear();
        }
    }
    out
}

fn push(out: &mut [String], c: char) {
    if let Some(l) = out.last_mut() {
        l.push(c);
    }
}

fn push_str(out: &mut [String], s: &str) {
    if let Some(l) = out.last_mut() {
        l.push_str(s);
    }
}

/// Top-level modules of its own crate a file refers to, with the line.
fn internal_refs(s: &Source) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let joined = s.code.join("\n");
    for (i, l) in s.code.iter().enumerate() {
        for m in idents_after(l, "crate::") {
            out.push((i + 1, m));
        }
        if s.top {
            for m in idents_after(l, "super::") {
                out.push((i + 1, m));
            }
        }
    }
    // `use crate::{a, b::c, …};` over one or several lines.
    let mut from = 0;
    while let Some(at) = joined[from..].find("crate::{") {
        let start = from + at + "crate::{".len();
        let line = joined[..start].matches('\n').count() + 1;
        let mut depth = 1;
        let mut item = String::new();
        let mut first = true;
        for c in joined[start..].chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 1 => {
                    if first && !item.is_empty() {
                        out.push((line, std::mem::take(&mut item)));
                    }
                    first = true;
                    item.clear();
                    continue;
                }
                _ => {}
            }
            if depth == 0 {
                break;
            }
            if first && depth == 1 {
                if c.is_alphanumeric() || c == '_' {
                    item.push(c);
                } else if !item.is_empty() {
                    out.push((line, std::mem::take(&mut item)));
                    first = false;
                }
            }
        }
        if first && !item.is_empty() {
            out.push((line, item));
        }
        from = start;
    }
    out.retain(|(_, m)| m != "self" && m != "super" && s.module.as_deref() != Some(m.as_str()));
    out
}

/// Identifiers that follow `prefix` in `line` (`crate::http::x` → `http`).
fn idents_after(line: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let ident: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !ident.is_empty() {
            out.push(ident);
        }
    }
    out
}

/// Lines of `s` that name the crate `name` as a path (`name::…`, `use name`).
fn external_refs(s: &Source, name: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, l) in s.code.iter().enumerate() {
        let mut rest = l.as_str();
        while let Some(at) = rest.find(name) {
            let before = rest[..at].chars().last();
            let after = &rest[at + name.len()..];
            let boundary_before = !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            let is_path = after.starts_with("::") || (l.trim_start().starts_with("use ") && after.starts_with(';'));
            if boundary_before && is_path {
                out.push(i + 1);
                break;
            }
            rest = after;
        }
    }
    out
}

/// What a check found, one line each: `file:line: what`.
pub fn check(root: &Path, rules: &[Rule]) -> Vec<String> {
    let tree = Tree { root, crates: root.join("crates") };
    rules
        .iter()
        .flat_map(|rule| match rule {
            Rule::NoImport { from, to, line } => tree.imports(from, to, *line),
            Rule::NoCircle { krate, line } => tree.circles(krate, *line),
            Rule::FunctionLength { max, line } => tree.lengths(*max, *line),
            Rule::ModuleDocs { line } => tree.docs(*line),
        })
        .collect()
}

/// The workspace the rules are checked on.
struct Tree<'a> {
    root: &'a Path,
    crates: PathBuf,
}

impl Tree<'_> {
    fn load(&self, krate: &str) -> Vec<Source> {
        sources(&self.crates.join(krate))
    }

    fn shown(&self, p: &Path) -> String {
        p.strip_prefix(self.root).unwrap_or(p).display().to_string()
    }

    fn imports(&self, from: &ModPath, to: &str, line: usize) -> Vec<String> {
        let files = self.load(&from.krate);
        if files.is_empty() {
            return vec![format!("docs/ARCHITECTURE.md:{line}: no crate `{}` under crates/", from.krate)];
        }
        let internal = to.strip_prefix(&format!("{}::", from.krate));
        let other_crate = format!("connect_pki_{}", to.replace('-', "_"));
        let in_workspace = self.crates.join(to).join("Cargo.toml").exists();
        let named = from.module.as_ref().map_or(from.krate.clone(), |m| format!("{}::{m}", from.krate));
        let mut found = Vec::new();
        for s in files.iter().filter(|s| from.module.is_none() || s.module == from.module) {
            let lines: Vec<usize> = match internal {
                Some(m) => internal_refs(s).into_iter().filter(|(_, r)| r == m).map(|(l, _)| l).collect(),
                None if in_workspace => external_refs(s, &other_crate),
                None => external_refs(s, to),
            };
            for l in lines {
                found.push(format!(
                    "{}:{l}: imports `{to}` (docs/ARCHITECTURE.md:{line}: `{named}` does not import `{to}`)",
                    self.shown(&s.path)
                ));
            }
        }
        found
    }

    fn circles(&self, krate: &str, line: usize) -> Vec<String> {
        let files = self.load(krate);
        let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let modules: BTreeSet<String> = files.iter().filter_map(|s| s.module.clone()).collect();
        for s in &files {
            let Some(m) = &s.module else { continue };
            for (l, to) in internal_refs(s) {
                if modules.contains(&to) {
                    edges.entry(m.clone()).or_default().entry(to).or_insert(format!("{}:{l}", self.shown(&s.path)));
                }
            }
        }
        circles(&modules, &edges)
            .into_iter()
            .map(|circle| {
                let steps: Vec<String> = circle
                    .iter()
                    .zip(circle.iter().cycle().skip(1))
                    .map(|(a, b)| format!("  {a} → {b} at {}", edges[a][b]))
                    .collect();
                format!("an import circle inside `{krate}` (docs/ARCHITECTURE.md:{line}):\n{}", steps.join("\n"))
            })
            .collect()
    }

    fn lengths(&self, max: usize, line: usize) -> Vec<String> {
        let mut found = Vec::new();
        for k in crate_names(&self.crates) {
            for s in &self.load(&k) {
                for (at, name, len) in functions(&s.code).into_iter().filter(|(_, _, len)| *len > max) {
                    found.push(format!(
                        "{}:{at}: fn {name} is {len} lines, more than {max} (docs/ARCHITECTURE.md:{line})",
                        self.shown(&s.path)
                    ));
                }
            }
        }
        found
    }

    fn docs(&self, line: usize) -> Vec<String> {
        let mut found = Vec::new();
        for k in crate_names(&self.crates) {
            for s in self.load(&k).iter().filter(|s| s.top && !s.text.trim_start().starts_with("//!")) {
                found.push(format!(
                    "{}:1: no `//!` paragraph naming the module's job (docs/ARCHITECTURE.md:{line})",
                    self.shown(&s.path)
                ));
            }
        }
        found
    }
}

fn crate_names(crates: &Path) -> Vec<String> {
    let Ok(dirs) = std::fs::read_dir(crates) else { return Vec::new() };
    let mut names: Vec<String> = dirs.flatten().map(|d| d.file_name().to_string_lossy().to_string()).collect();
    names.sort();
    names
}

/// Each function with a body in `code` (see [`code_lines`]): its first
/// line, name and length in lines, from `fn` to its closing brace.
fn functions(code: &[String]) -> Vec<(usize, String, usize)> {
    let mut out = Vec::new();
    // (first line, name, brace depth of its body)
    let mut open: Vec<(usize, String, usize)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    let mut depth = 0usize;
    for (i, line) in code.iter().enumerate() {
        if let Some(name) = fn_name(line) {
            pending = Some((i + 1, name));
        }
        for c in line.chars() {
            match c {
                '{' => {
                    depth += 1;
                    if let Some((at, name)) = pending.take() {
                        open.push((at, name, depth));
                    }
                }
                '}' => {
                    if open.last().is_some_and(|(_, _, d)| *d == depth)
                        && let Some((at, name, _)) = open.pop()
                    {
                        out.push((at, name, i + 2 - at));
                    }
                    depth = depth.saturating_sub(1);
                }
                // `fn f();` in a trait: no body follows.
                ';' => pending = None,
                _ => {}
            }
        }
    }
    out
}

fn fn_name(line: &str) -> Option<String> {
    let at = line.find("fn ")?;
    if line[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let name: String = line[at + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

/// One shortest circle through each strongly connected group of modules.
fn circles(nodes: &BTreeSet<String>, edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for next in edges.get(&n).into_iter().flat_map(|e| e.keys()) {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in nodes {
        if done.contains(n) || !reach(n).contains(n) {
            continue;
        }
        // The group: everything n reaches that reaches n.
        let group: BTreeSet<String> = reach(n).into_iter().filter(|m| reach(m).contains(n)).collect();
        done.extend(group.iter().cloned());
        out.push(shortest_cycle(n, edges));
    }
    out
}

fn shortest_cycle(start: &str, edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<String> {
    let mut back: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.to_string()]);
    while let Some(n) = queue.pop_front() {
        for next in edges.get(&n).into_iter().flat_map(|e| e.keys()) {
            if next == start {
                let mut path = vec![n.clone()];
                let mut at = n.clone();
                while let Some(prev) = back.get(&at) {
                    path.push(prev.clone());
                    at = prev.clone();
                }
                path.reverse();
                return path;
            }
            if !back.contains_key(next) && next != start {
                back.insert(next.clone(), n.clone());
                queue.push_back(next.clone());
            }
        }
    }
    vec![start.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workspace of one crate `demo` written to a scratch directory.
    fn demo(files: &[(&str, &str)]) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("tidy-demo-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in files {
            let p = root.join("crates/demo/src").join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("dir");
            std::fs::write(p, text).expect("write");
        }
        root
    }

    #[test]
    fn invariant_lines_are_read_and_unknown_ones_refused() {
        let doc = "x\nArchitecture invariant: `server::service` does not import `server::http`.\n\
                   Architecture invariant: no import circle inside `ca`.\n\
                   * Architecture invariant: every top-level module opens with a `//!` paragraph.\n";
        let r = rules(doc).expect("rules");
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            Rule::NoImport {
                from: ModPath { krate: "server".into(), module: Some("service".into()) },
                to: "server::http".into(),
                line: 2
            }
        );
        assert!(rules("Architecture invariant: things are nice.").is_err());
        let explained = rules("Architecture invariant: `a` does not import `b` (see `c` and `d`).").expect("rules");
        assert!(matches!(&explained[0], Rule::NoImport { to, .. } if to == "b"), "{explained:?}");
    }

    #[test]
    fn a_forbidden_import_is_named_with_its_file_and_line() {
        let root = demo(&[
            ("lib.rs", "//! Demo.\npub mod http;\npub mod service;\n"),
            ("http.rs", "//! HTTP.\npub fn rfc3339() {}\n"),
            ("service/mod.rs", "//! Service.\nmod inner;\n"),
            (
                "service/inner.rs",
                "// crate::http in a comment is fine\nuse crate::{\n    other,\n    http::rfc3339,\n};\n\
                 #[cfg(test)]\nmod tests { use crate::http; }\n",
            ),
        ]);
        let rules = rules("Architecture invariant: `demo::service` does not import `demo::http`.").expect("rules");
        let found = check(&root, &rules);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("crates/demo/src/service/inner.rs:2: imports `demo::http`"), "{found:?}");
    }

    #[test]
    fn a_circle_is_shown_step_by_step_and_a_module_without_docs_is_named() {
        let root = demo(&[
            ("lib.rs", "//! Demo.\n"),
            ("a.rs", "//! A.\nuse crate::b::x;\n"),
            ("b.rs", "//! B.\nfn f() { crate::c::y() }\n"),
            ("c.rs", "use super::a;\n"),
        ]);
        let doc = "Architecture invariant: no import circle inside `demo`.\n\
                   Architecture invariant: every top-level module opens with a `//!` paragraph.";
        let found = check(&root, &rules(doc).expect("rules"));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("a → b at crates/demo/src/a.rs:2"), "{}", found[0]);
        assert!(found[0].contains("c → a at crates/demo/src/c.rs:1"), "{}", found[0]);
        assert!(found[1].starts_with("crates/demo/src/c.rs:1: no `//!` paragraph"), "{found:?}");
    }

    #[test]
    fn a_long_function_is_named_and_braces_in_literals_do_not_count() {
        let root = demo(&[(
            "lib.rs",
            "//! Demo.\nfn short() {\n    let _ = \"}}}\";\n}\n\nfn long<'a>(x: &'a str) -> char {\n    let _ = '}';\n    \
             let _ = '\\'';\n    if x.is_empty() {\n        return '{';\n    }\n    'x'\n}\ntrait T {\n    fn declared(&self);\n}\n",
        )]);
        let found = check(&root, &rules("Architecture invariant: no function is longer than 5 lines.").expect("rules"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("crates/demo/src/lib.rs:6: fn long is 8 lines, more than 5"), "{found:?}");
    }

    #[test]
    fn other_crates_are_found_by_their_paths() {
        let root = demo(&[
            ("lib.rs", "//! Demo.\nuse axum::Router;\nuse sqlx;\nfn f() { let x = not_axum::y; }\n"),
            ("m.rs", "//! M.\nfn f() { connect_pki_store::Store::open() }\n"),
        ]);
        std::fs::create_dir_all(root.join("crates/store")).expect("dir");
        std::fs::write(root.join("crates/store/Cargo.toml"), "").expect("write");
        let doc = "Architecture invariant: `demo` does not import `axum`.\n\
                   Architecture invariant: `demo` does not import `sqlx`.\n\
                   Architecture invariant: `demo` does not import `store`.";
        let found = check(&root, &rules(doc).expect("rules"));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("crates/demo/src/lib.rs:2: imports `axum`"), "{found:?}");
        assert!(found[1].starts_with("crates/demo/src/lib.rs:3: imports `sqlx`"), "{found:?}");
        assert!(found[2].starts_with("crates/demo/src/m.rs:2: imports `store`"), "{found:?}");
    }
}
