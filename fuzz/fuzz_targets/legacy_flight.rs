//! Fuzz target `legacy_flight`: the body is `certfleet_prober::fuzzing::legacy_flight`, which the crate's
//! unit tests also run on every file of `fuzz/corpus/legacy_flight/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = certfleet_prober::fuzzing::legacy_flight(data);
});
