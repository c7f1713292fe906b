//! A short fuzzing run on every test run: each target over its seed corpus
//! (`fuzz/corpus/<target>/`) and thousands of deterministic mutations of it
//! (bit flips, cuts, splices, inserted bytes). A panic anywhere fails the
//! test; `fuzz/run` does the real, coverage-guided runs.

use std::path::PathBuf;

/// Mutations tried per seed.
const ROUNDS: usize = 3000;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no seed corpus at {}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.expect("entry").path()).expect("seed"))
        .collect();
    seeds.sort();
    seeds
}

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(rng.below(v.len() + 1)),
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !other.is_empty() => {
                let cut = rng.below(v.len() + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            _ if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0x00, 0x7f, 0x80, 0xff, b'-', b'{', b'"'][rng.below(7)];
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v
}

#[test]
fn every_target_survives_its_corpus_and_mutations_of_it() {
    let mut rng = Rng(0x5EED_C0DE_F00D_0001);
    for (name, target) in connect_pki_fuzzing::TARGETS {
        let seeds = corpus(name);
        assert!(!seeds.is_empty(), "{name}: empty seed corpus");
        let mut runs = 0;
        for (i, seed) in seeds.iter().enumerate() {
            target(seed);
            let other = &seeds[(i + 1) % seeds.len()];
            for _ in 0..ROUNDS {
                target(&mutate(seed, other, &mut rng));
                runs += 1;
            }
        }
        eprintln!("{name}: {} seeds, {runs} mutations, no panic", seeds.len());
    }
}
