//! Fuzz target: any bytes as a SIP response, framed (TCP) and as a whole or cut datagram
//! (UDP). Parsing never panics and never claims more bytes than it was given or than one
//! message may take.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipsteer::health::sip::{MAX_MESSAGE, parse_datagram, parse_response};

fuzz_target!(|data: &[u8]| {
    if let Ok((r, used)) = parse_response(data) {
        assert!(
            used <= data.len() && used <= MAX_MESSAGE,
            "took {used} bytes"
        );
        assert!((100..700).contains(&r.code));
    }
    for truncated in [false, true] {
        if let Ok(r) = parse_datagram(data, truncated) {
            assert!((100..700).contains(&r.code));
        }
    }
});
