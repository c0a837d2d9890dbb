//! Fuzz target `query_params`: the body is `certfleet_web::fuzzing::query_params`, which the crate's
//! unit tests also run on every file of `fuzz/corpus/query_params/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = certfleet_web::fuzzing::query_params(data);
});
