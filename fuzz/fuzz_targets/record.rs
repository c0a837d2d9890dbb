//! Fuzz target `record`: the body is `certfleet_store::fuzzing::record`, which the crate's
//! unit tests also run on every file of `fuzz/corpus/record/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = certfleet_store::fuzzing::record(data);
});
