//! Text → verified claims: the path a scanner takes for whatever its camera or keyboard wedge reads.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = common::verifier().verify_text(text, common::now());
    }
});
