//! The list of people in the call.

use crate::model::CallUi;
use confab_protocol::MediaState;
use leptos::prelude::*;

/// Who is in the call, with their mute and camera state.
#[component]
pub fn Participants(name: String, ui: CallUi) -> impl IntoView {
    let t = ui.texts;
    let count = move || ui.tiles.with(Vec::len) + 1;
    let describe = move |media: MediaState| match (media.muted, media.camera_off) {
        (false, false) => "",
        (true, false) => t.muted_note,
        (false, true) => t.camera_off_note,
        (true, true) => t.muted_camera_off_note,
    };
    view! {
        <details class="participants">
            <summary>{move || (t.people_count)(count())}</summary>
            <ul aria-label=t.participants>
                <li>
                    {(t.you)(&name)}
                    {move || describe(MediaState { muted: ui.muted.get(), camera_off: ui.camera_off.get(), screen: false })}
                </li>
                <For each=move || ui.tiles.get() key=|tile| tile.key.clone() let:tile>
                    <li>{tile.name.clone()} {move || describe(tile.media.get())}</li>
                </For>
            </ul>
        </details>
    }
}
