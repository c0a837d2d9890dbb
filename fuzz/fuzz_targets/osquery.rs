//! Fuzz target `osquery`: the body is `certfleet_web::fuzzing::osquery`, which the crate's
//! unit tests also run on every file of `fuzz/corpus/osquery/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = certfleet_web::fuzzing::osquery(data);
});
