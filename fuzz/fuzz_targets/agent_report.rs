//! Fuzz target `agent_report`: the body is `certfleet_web::fuzzing::agent_report`, which the crate's
//! unit tests also run on every file of `fuzz/corpus/agent_report/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = certfleet_web::fuzzing::agent_report(data);
});
