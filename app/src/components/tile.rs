//! A remote participant's tile.

use super::{Badges, StatsPanel, StreamVideo};
use crate::model::{CallUi, RemoteTile};
use leptos::prelude::*;

/// A remote participant's tile: their video (with sound), name, mute and camera badges, and
/// connection state. A `hidden` tile (on another page of the grid) keeps playing its sound.
#[component]
pub fn RemoteView(tile: RemoteTile, ui: CallUi, #[prop(into)] hidden: Signal<bool>) -> impl IntoView {
    let stream = tile.stream.clone();
    let state = tile.state.clone();
    let media = tile.media.clone();
    let camera_off = tile.media.clone();
    let presenting = tile.media.clone();
    let (speaking, key) = (ui.speaking, tile.key.clone());
    let stats_open = RwSignal::new(false);
    let stats = tile.stats.clone();
    let stats_name = tile.name.clone();
    let t = ui.texts;
    let label = (t.video_of)(&tile.name);
    view! {
        <figure
            class="tile remote"
            data-key=tile.key.0.clone()
            hidden=move || hidden.get()
            class:camera-off=move || camera_off.with(|m| m.camera_off && !m.screen)
            class:presenting=move || presenting.get().screen
            class:speaking=move || speaking.with(|s| s.as_ref() == Some(&key))
        >
            <StreamVideo
                stream=Signal::derive(move || stream.get())
                muted=false
                mirrored=false
                label=label
                sink=ui.speaker
            />
            <Badges name=tile.name.clone() media=Signal::derive(move || media.get())/>
            <figcaption>{tile.name.clone()}</figcaption>
            {move || state.get().label(t).map(|text| view! { <span class="tile-state">{text}</span> })}
            <button
                type="button"
                class="stats-toggle"
                aria-expanded=move || stats_open.get().to_string()
                on:click=move |_| stats_open.update(|open| *open = !*open)
            >
                {move || if stats_open.get() { t.hide_stats } else { t.stats }}
            </button>
            <Show when=move || stats_open.get()>
                <StatsPanel name=stats_name.clone() stats=stats.clone() t=t/>
            </Show>
        </figure>
    }
}
