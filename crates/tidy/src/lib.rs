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

mod graph;
mod rules;
mod source;

use graph::circles;
pub use rules::{ModPath, Rule, rules};
use source::{Source, external_refs, functions, internal_refs, refs_under, sources};

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
                // A module of an outside crate (`std::fs`): named under its parent.
                None => match to.rsplit_once("::") {
                    Some((parent, name)) => refs_under(s, &format!("{parent}::"))
                        .into_iter()
                        .filter(|(_, r)| r == name)
                        .map(|(l, _)| l)
                        .collect(),
                    None => external_refs(s, to),
                },
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
    fn a_module_of_an_outside_crate_is_found_however_it_is_named() {
        let root = demo(&[
            ("lib.rs", "//! Demo.\npub mod a;\npub mod b;\npub mod c;\npub mod d;\n"),
            ("a.rs", "//! A.\nfn f() { let _ = std::fs::read(\"x\"); }\n"),
            ("b.rs", "//! B.\nuse std::{\n    collections::HashMap,\n    fs::File,\n};\n"),
            ("c.rs", "//! C.\nuse std::io;\nuse tokio::fs;\n// std::fs in a comment is fine\n"),
            ("d.rs", "//! D.\nuse std::{fmt, fsx};\n"),
        ]);
        let rules = rules(
            "Architecture invariant: `demo` does not import `std::fs`.\nArchitecture invariant: `demo` does not import `tokio::fs`.",
        )
        .expect("rules");
        let mut found = check(&root, &rules);
        found.sort();
        let places: Vec<&str> = found.iter().map(|f| f.split(": imports").next().unwrap_or_default()).collect();
        assert_eq!(places, ["crates/demo/src/a.rs:2", "crates/demo/src/b.rs:2", "crates/demo/src/c.rs:3"], "{found:?}");
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
