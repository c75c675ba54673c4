//! What the browser remembers: the display name and the pre-join choices ([`Prefs`], as JSON)
//! in `localStorage`; per room, this tab's password, "list this room" and "entered from the start
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
/// Where the pre-join choices are remembered, as JSON.
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
/// line format of earlier versions) gives the defaults: the person picks again once.
pub fn stored_prefs() -> Prefs {
    get(local(), PREFS_KEY).map(|text| prefs_from_json(&text)).unwrap_or_default()
}

/// Remembers the pre-join choices for next time.
pub fn store_prefs(prefs: &Prefs) {
    put(local(), PREFS_KEY, Some(&prefs_to_json(prefs)));
}

fn prefs_to_json(prefs: &Prefs) -> String {
    serde_json::to_string(prefs).unwrap_or_default()
}

fn prefs_from_json(text: &str) -> Prefs {
    serde_json::from_str(text).unwrap_or_default()
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
            speaker: Some("out \"2\"".into()),
            muted: true,
            camera_off: false,
        };
        assert_eq!(prefs_from_json(&prefs_to_json(&prefs)), prefs);
    }

    #[test]
    fn unreadable_prefs_are_the_defaults() {
        // The line format earlier versions stored.
        assert_eq!(prefs_from_json("camera=cam-1\nmicrophone=\nmuted=1"), Prefs::default());
        assert_eq!(prefs_from_json(""), Prefs::default());
        // Members added or removed later do not lose the rest.
        assert_eq!(prefs_from_json(r#"{"muted":true,"volume":3}"#), Prefs { muted: true, ..Prefs::default() });
    }
}
