//! The home page: pick a room name and your name, then go to the room.

use super::{room_path, store_name, store_password, stored_name};
use confab_protocol::{DisplayName, RoomName, PASSWORD_MAX_CHARS};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

/// A form with "Room name" and "Your name" that leads to `/room/<name>`.
#[component]
pub fn HomePage() -> impl IntoView {
    let room = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
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
                <p class="error" role="alert">{move || error.get()}</p>
                <button type="submit" class="primary">"Join room"</button>
            </form>
        </section>
    }
}
