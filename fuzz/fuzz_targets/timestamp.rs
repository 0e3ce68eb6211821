//! The timestamp parser: any text is parsed or refused without a panic, and whatever
//! is accepted displays as RFC 3339 and parses back to the same instant.
#![no_main]

use eye_core::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(t) = Timestamp::parse(text) {
        let shown = t.to_string();
        // Years past 9999 do not fit the four-digit form; everything else round-trips.
        if shown.len() == 27 {
            assert_eq!(Timestamp::parse(&shown), Ok(t), "{text:?} -> {shown}");
        }
    }
});
