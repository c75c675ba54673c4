//! One module per screen.

pub mod home;
pub mod prejoin;
pub mod room;

use confab_protocol::RoomName;
use leptos::prelude::*;

/// Where the display name is remembered between visits.
const NAME_KEY: &str = "confab.name";

/// The display name remembered from the last visit, if any (browser only).
pub fn stored_name() -> Option<String> {
    let storage = web_sys::window()?.local_storage().ok()??;
    let stored = storage.get_item(NAME_KEY).ok()??;
    // A name that would be refused is asked for again.
    confab_protocol::DisplayName::parse(&stored).ok().map(|name| name.to_string())
}

/// Remembers the display name for the next visit (browser only; best effort).
pub fn store_name(name: &str) {
    if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.local_storage()) {
        let _ = storage.set_item(NAME_KEY, name);
    }
}

/// Where a room's password is kept for this tab (so a reload or a reconnect can give it again).
fn password_key(room: &RoomName) -> String {
    format!("confab.password.{room}")
}

/// The password this tab gave for `room`, if any (browser only).
pub fn stored_password(room: &RoomName) -> Option<String> {
    let storage = web_sys::window()?.session_storage().ok()??;
    storage.get_item(&password_key(room)).ok()?.filter(|p| !p.is_empty())
}

/// Remembers (or, with an empty one, forgets) the password for `room` in this tab.
pub fn store_password(room: &RoomName, password: &str) {
    if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.session_storage()) {
        let _ = if password.is_empty() {
            storage.remove_item(&password_key(room))
        } else {
            storage.set_item(&password_key(room), password)
        };
    }
}

fn listed_key(room: &RoomName) -> String {
    format!("confab.listed.{room}")
}

/// Whether this tab asked for `room` to be listed on the start page (browser only).
pub fn stored_listed(room: &RoomName) -> bool {
    let storage = web_sys::window().and_then(|w| w.session_storage().ok().flatten());
    storage.and_then(|s| s.get_item(&listed_key(room)).ok().flatten()).is_some_and(|v| v == "1")
}

/// Remembers whether this tab wants `room` listed.
pub fn store_listed(room: &RoomName, listed: bool) {
    if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.session_storage()) {
        let _ = if listed { storage.set_item(&listed_key(room), "1") } else { storage.remove_item(&listed_key(room)) };
    }
}

const PREFS_KEY: &str = "confab.prefs";

/// The choices made on the last pre-join screen (browser only).
pub fn stored_prefs() -> crate::model::Prefs {
    let storage = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
    let Some(text) = storage.and_then(|s| s.get_item(PREFS_KEY).ok().flatten()) else { return Default::default() };
    let mut prefs = crate::model::Prefs::default();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("camera", v)) if !v.is_empty() => prefs.camera = Some(v.to_owned()),
            Some(("microphone", v)) if !v.is_empty() => prefs.microphone = Some(v.to_owned()),
            Some(("speaker", v)) if !v.is_empty() => prefs.speaker = Some(v.to_owned()),
            Some(("muted", v)) => prefs.muted = v == "1",
            Some(("camera_off", v)) => prefs.camera_off = v == "1",
            _ => {}
        }
    }
    prefs
}

/// Remembers the pre-join choices for next time (best effort).
pub fn store_prefs(prefs: &crate::model::Prefs) {
    let flag = |b: bool| if b { "1" } else { "0" };
    let text = format!(
        "camera={}\nmicrophone={}\nspeaker={}\nmuted={}\ncamera_off={}",
        prefs.camera.as_deref().unwrap_or_default(),
        prefs.microphone.as_deref().unwrap_or_default(),
        prefs.speaker.as_deref().unwrap_or_default(),
        flag(prefs.muted),
        flag(prefs.camera_off),
    );
    if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.local_storage()) {
        let _ = storage.set_item(PREFS_KEY, &text);
    }
}

fn enter_key(room: &RoomName) -> String {
    format!("confab.enter.{room}")
}

/// Marks that this tab chose to enter `room` from the start page (no pre-join screen).
pub fn store_enter(room: &RoomName) {
    if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.session_storage()) {
        let _ = storage.set_item(&enter_key(room), "1");
    }
}

/// Whether this tab chose to enter `room` from the start page; forgets it (a reload of the room
/// page shows the pre-join screen).
pub fn take_enter(room: &RoomName) -> bool {
    let Some(storage) = web_sys::window().and_then(|w| w.session_storage().ok().flatten()) else { return false };
    let entered = storage.get_item(&enter_key(room)).ok().flatten().is_some();
    let _ = storage.remove_item(&enter_key(room));
    entered
}

/// The path of a room's page, e.g. `/room/team%20sync`: the link people share.
pub fn room_path(room: &RoomName) -> String {
    let mut path = String::from("/room/");
    for byte in room.as_str().bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}

/// Copies the current page's address to the clipboard (browser only). False if the browser
/// offers no clipboard here (not a secure context) or refused to write.
pub async fn copy_page_link() -> bool {
    use wasm_bindgen::JsCast;
    let Some(window) = web_sys::window() else { return false };
    let Ok(href) = window.location().href() else { return false };
    let Ok(clipboard) = js_sys::Reflect::get(&window.navigator(), &"clipboard".into()) else { return false };
    let write =
        js_sys::Reflect::get(&clipboard, &"writeText".into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    let Some(promise) = write.and_then(|w| w.call1(&clipboard, &href.as_str().into()).ok()) else { return false };
    let Ok(promise) = promise.dyn_into::<js_sys::Promise>() else { return false };
    wasm_bindgen_futures::JsFuture::from(promise).await.is_ok()
}

/// Shown for any unknown path.
#[component]
pub fn NotFound() -> impl IntoView {
    let t = crate::i18n::texts();
    view! {
        <section class="card">
            <h1>{t.page_not_found}</h1>
            <p><a href="/">{t.start_or_join}</a></p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_paths_are_percent_encoded() {
        assert_eq!(room_path(&RoomName::parse("daily").unwrap()), "/room/daily");
        assert_eq!(room_path(&RoomName::parse("team sync").unwrap()), "/room/team%20sync");
        assert_eq!(room_path(&RoomName::parse("a/b?c#d").unwrap()), "/room/a%2Fb%3Fc%23d");
        assert_eq!(room_path(&RoomName::parse("회의").unwrap()), "/room/%ED%9A%8C%EC%9D%98");
    }
}
