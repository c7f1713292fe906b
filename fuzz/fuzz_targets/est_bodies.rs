#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| connect_pki_fuzzing::est_bodies(data));
