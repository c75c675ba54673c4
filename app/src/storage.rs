//! What the browser remembers: the display name and the pre-join choices ([`Prefs`], in the
//! form of a URL query) in `localStorage`; per room, this tab's password, "list this room" and "entered from the start
//! page" in `sessionStorage`.
//!
//! Browser only, best effort: call these from effects and event handlers, never while rendering
//! (the server has no storage, and hydration must render what the server rendered). Without
//! storage (private modes, blocked cookies) reads find nothing and writes do nothing.

use crate::model::Prefs;
use confab_protocol::RoomName;
use web_sys::Storage;

/// Where the display name is remembered between visits.
const NAME_KEY: &str = "confab.name";
/// Where the pre-join choices are remembered, as `camera=…&microphone=…&speaker=…&muted=1`.
const PREFS_KEY: &str = "confab.prefs";

fn local() -> Option<Storage> {
    web_sys::window()?.local_storage().ok()?
}

fn session() -> Option<Storage> {
    web_sys::window()?.session_storage().ok()?
}

fn get(storage: Option<Storage>, key: &str) -> Option<String> {
    storage?.get_item(key).ok()?
}

/// Sets `key` to `value`, or removes it for `None`.
fn put(storage: Option<Storage>, key: &str, value: Option<&str>) {
    if let Some(storage) = storage {
        let _ = match value {
            Some(value) => storage.set_item(key, value),
            None => storage.remove_item(key),
        };
    }
}

/// The display name remembered from the last visit, if any.
pub fn stored_name() -> Option<String> {
    let stored = get(local(), NAME_KEY)?;
    // A name that would be refused is asked for again.
    confab_protocol::DisplayName::parse(&stored).ok().map(|name| name.to_string())
}

/// Remembers the display name for the next visit.
pub fn store_name(name: &str) {
    put(local(), NAME_KEY, Some(name));
}

/// Where a room's password is kept for this tab (so a reload or a reconnect can give it again).
fn password_key(room: &RoomName) -> String {
    format!("confab.password.{room}")
}

/// The password this tab gave for `room`, if any.
pub fn stored_password(room: &RoomName) -> Option<String> {
    get(session(), &password_key(room)).filter(|p| !p.is_empty())
}

/// Remembers (or, with an empty one, forgets) the password for `room` in this tab.
pub fn store_password(room: &RoomName, password: &str) {
    put(session(), &password_key(room), Some(password).filter(|p| !p.is_empty()));
}

fn listed_key(room: &RoomName) -> String {
    format!("confab.listed.{room}")
}

/// Whether this tab asked for `room` to be listed on the start page.
pub fn stored_listed(room: &RoomName) -> bool {
    get(session(), &listed_key(room)).is_some_and(|v| v == "1")
}

/// Remembers whether this tab wants `room` listed.
pub fn store_listed(room: &RoomName, listed: bool) {
    put(session(), &listed_key(room), listed.then_some("1"));
}

/// The choices made on the last pre-join screen. What cannot be read (nothing stored, or the
/// formats of earlier versions: lines, then JSON) gives the defaults: the person picks again
/// once.
pub fn stored_prefs() -> Prefs {
    get(local(), PREFS_KEY).map(|text| prefs_from_text(&text)).unwrap_or_default()
}

/// Remembers the pre-join choices for next time.
pub fn store_prefs(prefs: &Prefs) {
    put(local(), PREFS_KEY, Some(&prefs_to_text(prefs)));
}

// Not JSON: serde_json and the float formatting it brings were a tenth of the room page's
// first wasm, and this is the only JSON the pre-join screen reads.
fn prefs_to_text(prefs: &Prefs) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let devices = [("camera", &prefs.camera), ("microphone", &prefs.microphone), ("speaker", &prefs.speaker)];
    let devices = devices
        .into_iter()
        .filter_map(|(key, id)| Some(format!("{key}={}", utf8_percent_encode(id.as_ref()?, NON_ALPHANUMERIC))));
    let flags = [("muted", prefs.muted), ("camera_off", prefs.camera_off)];
    let flags = flags.into_iter().filter(|(_, on)| *on).map(|(key, _)| format!("{key}=1"));
    devices.chain(flags).collect::<Vec<_>>().join("&")
}

/// Reads what [`prefs_to_text`] wrote. A key it does not know is skipped (one added or removed
/// later does not lose the rest); anything else malformed gives the defaults.
fn prefs_from_text(text: &str) -> Prefs {
    let read = || {
        let mut prefs = Prefs::default();
        for pair in text.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=')?;
            // Only what `NON_ALPHANUMERIC` encoding writes.
            if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'%') {
                return None;
            }
            let value = percent_encoding::percent_decode_str(value).decode_utf8().ok()?.into_owned();
            match key {
                "camera" => prefs.camera = Some(value),
                "microphone" => prefs.microphone = Some(value),
                "speaker" => prefs.speaker = Some(value),
                "muted" => prefs.muted = value == "1",
                "camera_off" => prefs.camera_off = value == "1",
                _ if key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {}
                _ => return None,
            }
        }
        Some(prefs)
    };
    read().unwrap_or_default()
}

fn enter_key(room: &RoomName) -> String {
    format!("confab.enter.{room}")
}

/// Marks that this tab chose to enter `room` from the start page (no pre-join screen).
pub fn store_enter(room: &RoomName) {
    put(session(), &enter_key(room), Some("1"));
}

/// Whether this tab chose to enter `room` from the start page; forgets it (a reload of the room
/// page shows the pre-join screen).
pub fn take_enter(room: &RoomName) -> bool {
    let entered = get(session(), &enter_key(room)).is_some();
    put(session(), &enter_key(room), None);
    entered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefs_survive_a_round_trip() {
        let prefs = Prefs {
            camera: Some("cam-1".into()),
            microphone: None,
            speaker: Some("out \"2\" & =3 카메라".into()),
            muted: true,
            camera_off: false,
        };
        assert_eq!(prefs_from_text(&prefs_to_text(&prefs)), prefs);
        assert_eq!(prefs_from_text(&prefs_to_text(&Prefs::default())), Prefs::default());
        let all = Prefs { microphone: Some("".into()), camera_off: true, ..prefs };
        assert_eq!(prefs_from_text(&prefs_to_text(&all)), all);
    }

    #[test]
    fn unreadable_prefs_are_the_defaults() {
        // The formats earlier versions stored: lines, then JSON.
        assert_eq!(prefs_from_text("camera=cam-1\nmicrophone=\nmuted=1"), Prefs::default());
        assert_eq!(prefs_from_text(r#"{"camera":"cam-1","muted":true}"#), Prefs::default());
        assert_eq!(prefs_from_text(""), Prefs::default());
        assert_eq!(prefs_from_text("camera=%FF"), Prefs::default());
        // Members added or removed later do not lose the rest.
        assert_eq!(prefs_from_text("muted=1&volume=3"), Prefs { muted: true, ..Prefs::default() });
    }
}
