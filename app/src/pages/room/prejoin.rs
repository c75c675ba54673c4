//! The screen before a call, for people who open a room's link: camera preview, device
//! pickers, mute and camera toggles, a microphone level meter and the name. The choices are
//! remembered in the browser for next time, and the opened camera and microphone are handed to
//! the call (no second permission prompt, no black frame while joining).

use crate::components::{DevicePicker, StreamVideo};
use crate::i18n::texts;
use crate::model::{Device, Prefs, SharedStream};
use crate::status::MediaProblem;
use crate::storage::{store_name, store_prefs, stored_name, stored_prefs};
use confab_protocol::{DisplayName, RoomName};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

/// What the person chose: their name, their devices and states, and the open camera and mic.
pub type Entry = (String, Prefs, Option<SharedStream>);

/// "Join {room}": preview, pickers, toggles, level meter, name, "Join now".
#[component]
pub fn PreJoin(room: RoomName, on_join: impl Fn(Entry) + Send + Sync + 'static) -> impl IntoView {
    let t = texts();
    // Filled in from what this browser remembers, by the effect below.
    let name = RwSignal::new(String::new());
    let prefs = RwSignal::new(Prefs::default());
    let preview = RwSignal::new(None::<SharedStream>);
    let problem = RwSignal::new(None::<MediaProblem>);
    let level = RwSignal::new(0.0_f64);
    let (cameras, microphones, speakers) =
        (RwSignal::new(Vec::<Device>::new()), RwSignal::new(Vec::<Device>::new()), RwSignal::new(Vec::<Device>::new()));
    let (camera, microphone, speaker) = (RwSignal::new(None), RwSignal::new(None), RwSignal::new(None));
    let error = RwSignal::new(None::<String>);
    let meter = preview::Meter::new(level);

    // Opens (again) the chosen camera and microphone for the preview.
    // `picked`: the person just chose a device, so it must be that one.
    let open = move |picked: bool| {
        preview::stop(preview);
        problem.set(None);
        leptos::task::spawn_local(async move {
            let chosen = prefs.get_untracked();
            match preview::open(&chosen, picked).await {
                Ok(opened) => {
                    // Joined or gone meanwhile: the camera and microphone are not wanted any more.
                    if !preview::keep(preview, &opened.stream) {
                        return;
                    }
                    preview::apply(&opened.stream, &chosen);
                    camera.set(opened.camera);
                    microphone.set(opened.microphone);
                    cameras.set(opened.devices.cameras);
                    microphones.set(opened.devices.microphones);
                    speakers.set(opened.devices.speakers);
                    meter.listen(&opened.stream);
                }
                Err(e) => {
                    problem.try_set(Some(e));
                }
            }
        });
    };
    // In the browser only: the remembered name and choices, then the preview with them.
    Effect::new(move |_| {
        if let Some(stored) = stored_name() {
            name.set(stored);
        }
        let stored = stored_prefs();
        camera.set(stored.camera.clone());
        microphone.set(stored.microphone.clone());
        speaker.set(stored.speaker.clone());
        prefs.set(stored);
        open(false);
    });
    on_cleanup(move || {
        meter.stop();
        preview::stop(preview);
    });

    let toggle_mute = move |_| {
        prefs.update(|p| p.muted = !p.muted);
        if let Some(stream) = preview.get_untracked() {
            preview::apply(&stream, &prefs.get_untracked());
        }
    };
    let toggle_camera = move |_| {
        prefs.update(|p| p.camera_off = !p.camera_off);
        if let Some(stream) = preview.get_untracked() {
            preview::apply(&stream, &prefs.get_untracked());
        }
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match DisplayName::parse(&name.get_untracked()) {
            Ok(person) => {
                store_name(person.as_str());
                let chosen = Prefs {
                    camera: camera.get_untracked(),
                    microphone: microphone.get_untracked(),
                    speaker: speaker.get_untracked(),
                    ..prefs.get_untracked()
                };
                store_prefs(&chosen);
                meter.stop();
                // The call takes the open camera and microphone over.
                let stream = preview.try_update(Option::take).flatten();
                on_join((person.to_string(), chosen, stream));
            }
            Err(e) => error.set(Some((t.your_name_error)(e))),
        }
    };

    view! {
        <section class="card prejoin">
            <h1>{(t.join_title)(room.as_str())}</h1>
            <div class="preview" class:camera-off=move || prefs.with(|p| p.camera_off)>
                <StreamVideo stream=preview muted=true mirrored=true label=t.camera_preview.to_owned()/>
            </div>
            <Show when=move || problem.with(Option::is_some)>
                <p class="status" role="status">{move || problem.get().map(|p| p.explanation(t))}</p>
                <button type="button" class="primary" on:click=move |_| open(false)>{t.try_again}</button>
            </Show>
            <div class="prejoin-controls">
                <button type="button" class="control" class:off=move || prefs.with(|p| p.muted) on:click=toggle_mute>
                    {move || if prefs.with(|p| p.muted) { t.unmute } else { t.mute }}
                </button>
                <button
                    type="button"
                    class="control"
                    class:off=move || prefs.with(|p| p.camera_off)
                    on:click=toggle_camera
                >
                    {move || if prefs.with(|p| p.camera_off) { t.camera_on } else { t.camera_off }}
                </button>
                // In percent: a whole number, so the wasm needs no float formatting.
                <meter aria-label=t.mic_level min="0" max="100" value=move || (level.get() * 100.0).round() as u32></meter>
            </div>
            <div class="device-list">
                <DevicePicker
                    id="camera"
                    label=t.camera
                    devices=cameras
                    current=camera
                    on_pick=move |id| {
                        prefs.update(|p| p.camera = Some(id));
                        open(true);
                    }
                />
                <DevicePicker
                    id="microphone"
                    label=t.microphone
                    devices=microphones
                    current=microphone
                    on_pick=move |id| {
                        prefs.update(|p| p.microphone = Some(id));
                        open(true);
                    }
                />
                <Show when=move || speakers.with(|s| !s.is_empty())>
                    <DevicePicker
                        id="speaker"
                        label=t.speaker
                        devices=speakers
                        current=speaker
                        on_pick=move |id| speaker.set(Some(id))
                    />
                </Show>
            </div>
            <form on:submit=on_submit>
                <label for="name">{t.your_name}</label>
                <input id="name" name="name" required maxlength=DisplayName::MAX_CHARS autocomplete="nickname" bind:value=name/>
                <p class="error" role="alert">{move || error.get()}</p>
                <button type="submit" class="primary">{t.join_now}</button>
            </form>
        </section>
    }
}

/// The preview's media: real in the browser, nothing on the server (where no effect runs).
mod preview {
    use crate::model::{Prefs, SharedStream};
    use leptos::prelude::*;

    /// What opening found.
    #[cfg(feature = "hydrate")]
    pub struct Opened {
        pub stream: SharedStream,
        pub camera: Option<String>,
        pub microphone: Option<String>,
        pub devices: crate::media::Devices,
    }

    /// Opens the chosen (or default) camera and microphone and lists the devices.
    #[cfg(feature = "hydrate")]
    pub async fn open(prefs: &Prefs, exact: bool) -> Result<Opened, crate::status::MediaProblem> {
        use crate::media;
        let stream = media::open_camera_and_mic(prefs.camera.as_deref(), prefs.microphone.as_deref(), exact).await?;
        let camera = media::first_track(&stream.get_video_tracks()).as_ref().and_then(media::device_id_of);
        let microphone = media::first_track(&stream.get_audio_tracks()).as_ref().and_then(media::device_id_of);
        let devices = media::list_devices().await;
        Ok(Opened { stream: send_wrapper::SendWrapper::new(stream), camera, microphone, devices })
    }

    #[cfg(not(feature = "hydrate"))]
    pub struct Opened {
        pub stream: SharedStream,
        pub camera: Option<String>,
        pub microphone: Option<String>,
        pub devices: Devices,
    }

    #[cfg(not(feature = "hydrate"))]
    #[derive(Default)]
    pub struct Devices {
        pub cameras: Vec<crate::model::Device>,
        pub microphones: Vec<crate::model::Device>,
        pub speakers: Vec<crate::model::Device>,
    }

    #[cfg(not(feature = "hydrate"))]
    pub async fn open(_prefs: &Prefs, _exact: bool) -> Result<Opened, crate::status::MediaProblem> {
        Err(crate::status::MediaProblem::Other("no media on the server".into()))
    }

    /// Applies mute and camera-off to the preview's tracks.
    pub fn apply(stream: &SharedStream, prefs: &Prefs) {
        #[cfg(feature = "hydrate")]
        for track in crate::media::tracks(stream) {
            track.set_enabled(if track.kind() == "audio" { !prefs.muted } else { !prefs.camera_off });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (stream, prefs);
    }

    /// Shows `stream` in the preview; false (and the stream stopped) if the screen is gone.
    pub fn keep(preview: RwSignal<Option<SharedStream>>, stream: &SharedStream) -> bool {
        if preview.try_set(Some(stream.clone())).is_some() {
            #[cfg(feature = "hydrate")]
            crate::media::stop_all(stream);
            return false;
        }
        true
    }

    /// Stops and forgets the preview's camera and microphone, if any.
    pub fn stop(preview: RwSignal<Option<SharedStream>>) {
        #[cfg(feature = "hydrate")]
        if let Some(Some(stream)) = preview.try_update(Option::take) {
            crate::media::stop_all(&stream);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = preview;
    }

    /// The microphone level meter: Web Audio's analyser, read ten times a second.
    #[derive(Clone, Copy)]
    pub struct Meter {
        level: RwSignal<f64>,
        #[cfg(feature = "hydrate")]
        state: StoredValue<Option<(send_wrapper::SendWrapper<web_sys::AudioContext>, IntervalHandle)>, LocalStorage>,
    }

    impl Meter {
        pub fn new(level: RwSignal<f64>) -> Self {
            Meter {
                level,
                #[cfg(feature = "hydrate")]
                state: StoredValue::new_local(None),
            }
        }

        /// Measures `stream`'s microphone from now on.
        pub fn listen(self, stream: &SharedStream) {
            self.stop();
            #[cfg(feature = "hydrate")]
            {
                let Ok(context) = web_sys::AudioContext::new() else { return };
                let Ok(source) = context.create_media_stream_source(stream) else { return };
                let Ok(analyser) = context.create_analyser() else { return };
                analyser.set_fft_size(512);
                let _ = source.connect_with_audio_node(&analyser);
                let analyser = send_wrapper::SendWrapper::new(analyser);
                let level = self.level;
                let Ok(handle) = set_interval_with_handle(
                    move || {
                        let mut samples = vec![0.0_f32; 512];
                        analyser.get_float_time_domain_data(&mut samples);
                        let rms = (samples.iter().map(|s| s * s).sum::<f32>() / 512.0).sqrt();
                        level.set(f64::from((rms * 4.0).min(1.0)));
                    },
                    std::time::Duration::from_millis(100),
                ) else {
                    return;
                };
                self.state.set_value(Some((send_wrapper::SendWrapper::new(context), handle)));
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = stream;
        }

        /// Stops measuring.
        pub fn stop(self) {
            #[cfg(feature = "hydrate")]
            if let Some(Some((context, handle))) = self.state.try_update_value(Option::take) {
                handle.clear();
                let _ = context.close();
            }
            self.level.try_set(0.0);
        }
    }
}
