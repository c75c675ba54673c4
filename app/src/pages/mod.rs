//! One module per screen (a page imports components, never another page).

pub mod home;
// Not in the start page's bundle: its `#[lazy]` call code would be exported, and so kept.
#[cfg(not(feature = "start-page"))]
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

/// Which page a path shows. The app switches on this itself rather than through the router's
/// `<Routes>`: their type erasure is about a tenth of the wasm (measured: 32.6 KB of 343 KB
/// brotli). The server's route list still comes from [`crate::server_routes`]. The browser has
/// no router at all: every move between pages is a page load (links, the start page's form,
/// Leave: see [`go_to`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Page {
    /// `/`: the start page.
    Home,
    /// `/room/<name>`: the segment percent-decoded (the name itself is checked by the page).
    Room(String),
    /// Anything else.
    NotFound,
}

impl Page {
    /// The page for `path` (a URL's path, percent-encoded as sent).
    pub fn of(path: &str) -> Page {
        if path == "/" {
            return Page::Home;
        }
        match path.strip_prefix("/room/") {
            Some(segment) if !segment.is_empty() && !segment.contains('/') => {
                match percent_encoding::percent_decode_str(segment).decode_utf8() {
                    Ok(name) => Page::Room(name.into_owned()),
                    Err(_) => Page::NotFound,
                }
            }
            _ => Page::NotFound,
        }
    }
}

/// Goes to `path` with a page load (browser only; the server never runs handlers).
pub fn go_to(path: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let _ = window.location().assign(path);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
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
            <p><a href="/" rel="external">{t.start_or_join}</a></p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_choose_their_page() {
        assert_eq!(Page::of("/"), Page::Home);
        assert_eq!(Page::of("/room/daily"), Page::Room("daily".into()));
        assert_eq!(Page::of("/room/team%20sync"), Page::Room("team sync".into()));
        assert_eq!(Page::of("/room/a%2Fb%3Fc%23d"), Page::Room("a/b?c#d".into()));
        assert_eq!(Page::of("/room/%ED%9A%8C%EC%9D%98"), Page::Room("회의".into()));
        for unknown in ["", "/room", "/room/", "/room/a/b", "/rooms/a", "/nope", "/room/%FF"] {
            assert_eq!(Page::of(unknown), Page::NotFound, "{unknown}");
        }
        // What `room_path` writes reads back as the same name.
        for name in ["daily", "team sync", "a/b?c#d", "회의"] {
            assert_eq!(Page::of(&room_path(&RoomName::parse(name).unwrap())), Page::Room(name.into()));
        }
    }

    #[test]
    fn room_paths_are_percent_encoded() {
        assert_eq!(room_path(&RoomName::parse("daily").unwrap()), "/room/daily");
        assert_eq!(room_path(&RoomName::parse("team sync").unwrap()), "/room/team%20sync");
        assert_eq!(room_path(&RoomName::parse("a/b?c#d").unwrap()), "/room/a%2Fb%3Fc%23d");
        assert_eq!(room_path(&RoomName::parse("회의").unwrap()), "/room/%ED%9A%8C%EC%9D%98");
    }
}
