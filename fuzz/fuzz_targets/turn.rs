//! Datagrams to the embedded TURN server: whatever arrives, the guard's parsing (STUN decode,
//! XOR-PEER-ADDRESS) returns without panicking, and what it reads back is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((_, Some(peers))) = confab_server::turn::guard::inspect(data) {
        // Every peer address came from an attribute of at least 8 bytes.
        assert!(peers.len() * 8 <= data.len());
    }
});
