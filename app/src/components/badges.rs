//! The badges on a tile.

use crate::i18n::texts;
use confab_protocol::MediaState;
use leptos::prelude::*;

/// "Muted" and "Camera off" badges on a tile; with the camera off, the person's initial stands
/// in for the black picture.
#[component]
pub fn Badges(name: String, #[prop(into)] media: Signal<MediaState>) -> impl IntoView {
    let t = texts();
    let initial = name.chars().next().map(|c| c.to_uppercase().to_string()).unwrap_or_default();
    view! {
        // While presenting, the video is the screen: the camera's state does not show.
        <Show when=move || media.with(|m| m.camera_off && !m.screen)>
            <span class="avatar" aria-hidden="true">{initial.clone()}</span>
        </Show>
        <span class="badges">
            <Show when=move || media.get().screen>
                <span class="badge presenting">{t.presenting}</span>
            </Show>
            <Show when=move || media.get().muted>
                <span class="badge">{t.muted_badge}</span>
            </Show>
            <Show when=move || media.with(|m| m.camera_off && !m.screen)>
                <span class="badge">{t.camera_off_badge}</span>
            </Show>
        </span>
    }
}
