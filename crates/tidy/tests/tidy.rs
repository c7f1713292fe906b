//! The workspace against the invariants `docs/ARCHITECTURE.md` states.

use std::path::Path;

#[test]
fn the_sources_keep_every_architecture_invariant() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md");
    let rules = connect_pki_tidy::rules(&doc).unwrap_or_else(|e| panic!("{e}"));
    assert!(rules.len() >= 10, "docs/ARCHITECTURE.md states only {} invariants: {rules:?}", rules.len());
    let found = connect_pki_tidy::check(&root, &rules);
    assert!(found.is_empty(), "{} violations:\n{}", found.len(), found.join("\n"));
}
