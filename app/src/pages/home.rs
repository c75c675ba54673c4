//! The home page: pick a room name and your name, then go to the room.

use super::{go_to, room_path};
use crate::i18n::texts;
use crate::storage::{store_enter, store_listed, store_name, store_password, stored_name};
use confab_protocol::{DisplayName, ListedRoom, RoomName, PASSWORD_MAX_CHARS};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

/// A form with "Room name" and "Your name" that leads to `/room/<name>`.
#[component]
pub fn HomePage() -> impl IntoView {
    let t = texts();
    let room = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let listed = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // Runs in the browser only, after hydration: the server cannot know the stored name.
    Effect::new(move |_| {
        if let Some(stored) = stored_name() {
            name.set(stored);
        }
    });
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match (RoomName::parse(&room.get_untracked()), DisplayName::parse(&name.get_untracked())) {
            (Err(e), _) => error.set(Some((t.room_name_error)(e))),
            (_, Err(e)) => error.set(Some((t.your_name_error)(e))),
            (Ok(room), Ok(name)) => {
                store_name(name.as_str());
                store_password(&room, &password.get_untracked());
                store_listed(&room, listed.get_untracked());
                store_enter(&room);
                // The room page loads (its assets most likely fetched ahead already, see
                // `fetch_room_assets_ahead`).
                go_to(&room_path(&room));
            }
        }
    };

    view! {
        <section class="card home">
            <h1 class="brand">"confab"</h1>
            <p class="tagline">{t.tagline}</p>
            <form on:submit=on_submit on:focusin=|_| fetch_room_assets_ahead()>
                <label for="room">{t.room_name}</label>
                <input
                    id="room"
                    name="room"
                    required
                    maxlength=RoomName::MAX_CHARS
                    autocomplete="off"
                    placeholder=t.room_placeholder
                    bind:value=room
                />
                <label for="name">{t.your_name}</label>
                <input
                    id="name"
                    name="name"
                    required
                    maxlength=DisplayName::MAX_CHARS
                    autocomplete="nickname"
                    placeholder=t.name_placeholder
                    bind:value=name
                />
                <label for="password">{t.password_optional}</label>
                <input
                    id="password"
                    name="password"
                    type="password"
                    maxlength=PASSWORD_MAX_CHARS
                    autocomplete="off"
                    aria-describedby="password-hint"
                    bind:value=password
                />
                <p id="password-hint" class="hint">{t.password_hint}</p>
                <label class="check">
                    <input type="checkbox" name="listed" bind:checked=listed/>
                    {t.list_room}
                </label>
                <p class="error" role="alert">{move || error.get()}</p>
                <button type="submit" class="primary">{t.join_room}</button>
            </form>
            <crate::i18n::LangPicker/>
        </section>
        <OpenRooms/>
    }
}

/// Starts fetching the room page's script and wasm, which the server lists in a `<meta>` when
/// it sent the start page's own bundle; once, when someone starts filling in the form. The
/// files are immutable, so the room page then takes them from the cache. Without the start
/// bundle (the full bundle runs this page) there is nothing to fetch.
fn fetch_room_assets_ahead() {
    #[cfg(all(feature = "hydrate", feature = "start-page"))]
    {
        let Some(document) = web_sys::window().and_then(|w| w.document()) else { return };
        let selector = format!("meta[name=\"{}\"]", crate::ROOM_ASSETS_META);
        let Ok(Some(meta)) = document.query_selector(&selector) else { return };
        let urls = meta.get_attribute("content").unwrap_or_default();
        // Once: the next focus finds no list.
        meta.remove();
        let Some(head) = document.head() else { return };
        for url in urls.split_whitespace() {
            if let Ok(link) = document.create_element("link") {
                let _ = link.set_attribute("rel", "prefetch");
                let _ = link.set_attribute("href", url);
                let _ = head.append_child(&link);
            }
        }
    }
}

/// How often the start page asks for the listed rooms.
const ROOMS_REFRESH: std::time::Duration = std::time::Duration::from_secs(3);

/// The rooms whose creators listed them, with how many people are in each, kept current.
#[component]
fn OpenRooms() -> impl IntoView {
    let t = texts();
    let rooms = RwSignal::new(None::<Vec<ListedRoom>>);
    Effect::new(move |_| {
        let refresh = move || leptos::task::spawn_local(async move { rooms.set(fetch_rooms().await) });
        refresh();
        if let Ok(handle) = set_interval_with_handle(refresh, ROOMS_REFRESH) {
            on_cleanup(move || handle.clear());
        }
    });
    view! {
        <section class="card open-rooms" aria-labelledby="open-rooms">
            <h2 id="open-rooms">{t.open_rooms}</h2>
            {move || match rooms.get() {
                None => view! { <p class="hint">{t.loading}</p> }.into_any(),
                Some(list) if list.is_empty() => view! { <p class="hint">{t.no_open_rooms}</p> }.into_any(),
                Some(list) => view! {
                    <ul>
                        {list
                            .into_iter()
                            .map(|room| {
                                let people = (t.people)(room.people);
                                view! {
                                    <li>
                                        <a href=room_path(&room.name) rel="external">{room.name.to_string()}</a>
                                        <span class="people">{people}</span>
                                        {room.locked.then(|| view! { <span class="locked">{t.has_password}</span> })}
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                }
                .into_any(),
            }}
        </section>
    }
}

/// The listed rooms from the server; `None` until they could be read.
///
/// Read with the browser's own `fetch` and `JSON.parse`, not gloo-net and serde_json: this is
/// the only JSON the start page reads, and those two (with the float formatting serde's error
/// messages bring) were about a tenth of its bundle.
async fn fetch_rooms() -> Option<Vec<ListedRoom>> {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        use wasm_bindgen_futures::JsFuture;
        let window = web_sys::window()?;
        let response: web_sys::Response =
            JsFuture::from(window.fetch_with_str(confab_protocol::ROOMS_PATH)).await.ok()?.dyn_into().ok()?;
        if !response.ok() {
            return None;
        }
        listed_rooms(&JsFuture::from(response.json().ok()?).await.ok()?)
    }
    #[cfg(not(feature = "hydrate"))]
    None
}

/// The rooms in a parsed [`confab_protocol::ROOMS_PATH`] answer: the same checks as the
/// protocol's `Deserialize` (a valid room name, a whole count, a flag); `None` if any fails.
#[cfg(feature = "hydrate")]
fn listed_rooms(json: &wasm_bindgen::JsValue) -> Option<Vec<ListedRoom>> {
    use wasm_bindgen::JsCast;
    let field = |item: &wasm_bindgen::JsValue, name: &str| js_sys::Reflect::get(item, &name.into()).ok();
    let array = json.dyn_ref::<js_sys::Array>()?;
    array
        .iter()
        .map(|item| {
            let name = RoomName::parse(&field(&item, "name")?.as_string()?).ok()?;
            let people = field(&item, "people")?.as_f64().filter(|n| n.fract() == 0.0 && *n >= 0.0)?;
            let locked = field(&item, "locked")?.as_bool()?;
            Some(ListedRoom { name, people: people as usize, locked })
        })
        .collect()
}
