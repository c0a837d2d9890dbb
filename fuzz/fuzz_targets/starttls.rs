//! Fuzz target `starttls`: the body is `certfleet_prober::fuzzing::starttls`, which the crate's
//! unit tests also run on every file of `fuzz/corpus/starttls/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = certfleet_prober::fuzzing::starttls(data);
});
