//! Import circles between a crate's modules, each shown by one shortest
//! path round it.

use std::collections::{BTreeMap, BTreeSet};

/// One shortest circle through each strongly connected group of modules.
pub(crate) fn circles(
    nodes: &BTreeSet<String>,
    edges: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<Vec<String>> {
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
