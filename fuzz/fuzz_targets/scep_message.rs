#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| connect_pki_fuzzing::scep_message(data));
