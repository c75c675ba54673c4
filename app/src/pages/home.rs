//! The home page: pick a room name and your name, then go to the room.

use super::{room_path, store_listed, store_name, store_password, stored_name};
use confab_protocol::{DisplayName, ListedRoom, RoomName, PASSWORD_MAX_CHARS};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

/// A form with "Room name" and "Your name" that leads to `/room/<name>`.
#[component]
pub fn HomePage() -> impl IntoView {
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
    let navigate = use_navigate();
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match (RoomName::parse(&room.get_untracked()), DisplayName::parse(&name.get_untracked())) {
            (Err(e), _) => error.set(Some(format!("The room name {e}."))),
            (_, Err(e)) => error.set(Some(format!("Your name {e}."))),
            (Ok(room), Ok(name)) => {
                store_name(name.as_str());
                store_password(&room, &password.get_untracked());
                store_listed(&room, listed.get_untracked());
                navigate(&room_path(&room), Default::default());
            }
        }
    };

    view! {
        <section class="card home">
            <h1 class="brand">"confab"</h1>
            <p class="tagline">"Video calls that go straight from browser to browser. Name a room, share its link."</p>
            <form on:submit=on_submit>
                <label for="room">"Room name"</label>
                <input
                    id="room"
                    name="room"
                    required
                    maxlength=RoomName::MAX_CHARS
                    autocomplete="off"
                    placeholder="e.g. team-standup"
                    bind:value=room
                />
                <label for="name">"Your name"</label>
                <input
                    id="name"
                    name="name"
                    required
                    maxlength=DisplayName::MAX_CHARS
                    autocomplete="nickname"
                    placeholder="How others will see you"
                    bind:value=name
                />
                <label for="password">"Room password (optional)"</label>
                <input
                    id="password"
                    name="password"
                    type="password"
                    maxlength=PASSWORD_MAX_CHARS
                    autocomplete="off"
                    aria-describedby="password-hint"
                    bind:value=password
                />
                <p id="password-hint" class="hint">
                    "If you are first in the room, everyone after you will need this password."
                </p>
                <label class="check">
                    <input type="checkbox" name="listed" bind:checked=listed/>
                    "List this room on the start page"
                </label>
                <p class="error" role="alert">{move || error.get()}</p>
                <button type="submit" class="primary">"Join room"</button>
            </form>
        </section>
        <OpenRooms/>
    }
}

/// How often the start page asks for the listed rooms.
const ROOMS_REFRESH: std::time::Duration = std::time::Duration::from_secs(3);

/// The rooms whose creators listed them, with how many people are in each, kept current.
#[component]
fn OpenRooms() -> impl IntoView {
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
            <h2 id="open-rooms">"Open rooms"</h2>
            {move || match rooms.get() {
                None => view! { <p class="hint">"Loading…"</p> }.into_any(),
                Some(list) if list.is_empty() => view! { <p class="hint">"No open rooms right now."</p> }.into_any(),
                Some(list) => view! {
                    <ul>
                        {list
                            .into_iter()
                            .map(|room| {
                                let people = match room.people {
                                    1 => "1 person".to_owned(),
                                    n => format!("{n} people"),
                                };
                                view! {
                                    <li>
                                        <a href=room_path(&room.name)>{room.name.to_string()}</a>
                                        <span class="people">{people}</span>
                                        {room.locked.then(|| view! { <span class="locked">"password"</span> })}
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
async fn fetch_rooms() -> Option<Vec<ListedRoom>> {
    #[cfg(feature = "hydrate")]
    {
        let response = gloo_net::http::Request::get(confab_protocol::ROOMS_PATH).send().await.ok()?;
        serde_json::from_str(&response.text().await.ok()?).ok()
    }
    #[cfg(not(feature = "hydrate"))]
    None
}
