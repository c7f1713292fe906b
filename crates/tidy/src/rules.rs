//! The rules as `docs/ARCHITECTURE.md` states them: its "Architecture
//! invariant:" lines, read into [`Rule`]s.

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
