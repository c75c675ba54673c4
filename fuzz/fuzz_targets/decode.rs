//! Any text a client can send: decoding never panics, and whatever decodes encodes back to a
//! message that decodes to the same value. Names that parse are trimmed and within limits.
#![no_main]

use confab_protocol::{ClientMsg, DisplayName, RoomName, ServerMsg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(msg) = ClientMsg::from_json(text) {
        let again = ClientMsg::from_json(&msg.to_json()).expect("an encoded message decodes");
        assert_eq!(again, msg);
    }
    if let Ok(msg) = ServerMsg::from_json(text) {
        let again = ServerMsg::from_json(&msg.to_json()).expect("an encoded message decodes");
        assert_eq!(again, msg);
    }
    if let Ok(room) = RoomName::parse(text) {
        assert_eq!(room.as_str(), room.as_str().trim());
        assert!(!room.as_str().is_empty() && room.as_str().chars().count() <= RoomName::MAX_CHARS);
        assert!(!room.as_str().chars().any(char::is_control));
    }
    if let Ok(name) = DisplayName::parse(text) {
        assert!(!name.as_str().is_empty() && name.as_str().chars().count() <= DisplayName::MAX_CHARS);
    }
});
