//! A crate's source files read as code: comments and literals left out,
//! the `#[cfg(test)]` tail dropped; what each file imports, and its
//! functions with their lengths.

use std::path::{Path, PathBuf};

/// A source file of a crate, read once.
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    /// The top-level module it belongs to (`None` for lib.rs / main.rs).
    pub(crate) module: Option<String>,
    /// Whether it is the file of that module itself (`m.rs`, `m/mod.rs`).
    pub(crate) top: bool,
    /// Lines with comments and the `#[cfg(test)]` tail blanked out.
    pub(crate) code: Vec<String>,
    pub(crate) text: String,
}

pub(crate) fn sources(krate_dir: &Path) -> Vec<Source> {
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
pub(crate) fn internal_refs(s: &Source) -> Vec<(usize, String)> {
    let mut out = refs_under(s, "crate::");
    if s.top {
        for (i, l) in s.code.iter().enumerate() {
            for m in idents_after(l, "super::") {
                out.push((i + 1, m));
            }
        }
    }
    out.retain(|(_, m)| m != "self" && m != "super" && s.module.as_deref() != Some(m.as_str()));
    out
}

/// The names right under `prefix` a file refers to, with the line:
/// `std::` → `fs` in `std::fs::read(…)` and in `use std::{fs, io};` over one
/// or several lines.
pub(crate) fn refs_under(s: &Source, prefix: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, l) in s.code.iter().enumerate() {
        for m in idents_after(l, prefix) {
            out.push((i + 1, m));
        }
    }
    let joined = s.code.join("\n");
    let group = format!("{prefix}{{");
    let mut from = 0;
    while let Some(at) = joined[from..].find(&group) {
        let start = from + at + group.len();
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
pub(crate) fn external_refs(s: &Source, name: &str) -> Vec<usize> {
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

/// Each function with a body in `code` (see [`code_lines`]): its first
/// line, name and length in lines, from `fn` to its closing brace.
pub(crate) fn functions(code: &[String]) -> Vec<(usize, String, usize)> {
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
