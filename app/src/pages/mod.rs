//! One module per screen (a page imports components, never another page).

pub mod home;
pub mod room;

use confab_protocol::RoomName;
use leptos::prelude::*;

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
