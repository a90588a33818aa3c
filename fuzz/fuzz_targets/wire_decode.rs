//! The aggregator's batch decoder on arbitrary bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = teiten_wire::decode(data, teiten_wire::Limits::default());
});
