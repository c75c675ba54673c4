//! A `<video>` for a media stream.

use crate::i18n::texts;
use crate::model::SharedStream;
use leptos::prelude::*;

/// A `<video>` playing a media stream. When the browser blocks playback with sound (no click
/// on the page yet), a "Play sound" button starts it.
#[component]
pub fn StreamVideo(
    #[prop(into)] stream: Signal<Option<SharedStream>>,
    muted: bool,
    mirrored: bool,
    label: String,
    /// The sound output to play on (`None` in the signal: the default).
    #[prop(optional)]
    sink: Option<RwSignal<Option<String>>>,
) -> impl IntoView {
    let video = NodeRef::<leptos::html::Video>::new();
    if let Some(sink) = sink {
        Effect::new(move |_| {
            let id = sink.get().unwrap_or_default();
            let Some(video) = video.get() else { return };
            // Where the browser has no setSinkId the speaker picker is not shown.
            let set_sink = js_sys::Reflect::get(&video, &"setSinkId".into())
                .ok()
                .and_then(|f| wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f).ok());
            if let Some(promise) = set_sink.and_then(|f| f.call1(&video, &id.into()).ok()) {
                let promise: js_sys::Promise = wasm_bindgen::JsCast::unchecked_into(promise);
                leptos::task::spawn_local(async move {
                    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
                });
            }
        });
    }
    let blocked = RwSignal::new(false);
    let play = move || {
        let Some(video) = video.get_untracked() else { return };
        let Ok(promise) = video.play() else { return };
        leptos::task::spawn_local(async move {
            let refused = wasm_bindgen_futures::JsFuture::from(promise).await.is_err();
            // Refused playback of a stream that has since gone is no reason to ask.
            blocked.set(refused && video.src_object().is_some());
        });
    };
    Effect::new(move |_| {
        let stream = stream.get();
        if let Some(video) = video.get() {
            video.set_src_object(stream.as_deref());
            if stream.is_some() && !muted {
                play();
            }
        }
    });
    view! {
        <video
            node_ref=video
            autoplay
            playsinline
            prop:muted=muted
            class:mirrored=mirrored
            aria-label=label
        ></video>
        <Show when=move || blocked.get()>
            <button type="button" class="play-sound" on:click=move |_| play()>{texts().play_sound}</button>
        </Show>
    }
}
