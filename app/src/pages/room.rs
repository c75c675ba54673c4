//! The room page: the pre-join screen (unless the person came from the start page's form), then
//! the call.

use super::prejoin::PreJoin;
use super::{copy_page_link, store_password, stored_listed, stored_name, stored_password, stored_prefs, take_enter};
use crate::call::Call;
use crate::i18n::{texts, Texts};
use crate::model::{CallUi, Device, Prefs, RemoteTile, SharedStream};
use crate::status::{status_line, Phase, Shortcut};
use confab_protocol::{MediaState, RoomName, CHAT_MAX_CHARS, PASSWORD_MAX_CHARS};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};

/// `/room/<name>`: the call, or the reason there is none.
#[component]
pub fn RoomPage() -> impl IntoView {
    let t = texts();
    let params = use_params_map();
    let room = Memo::new(move |_| RoomName::parse(&params.read().get("room").unwrap_or_default()));
    // Who enters, with what: from the pre-join screen, or straight from the start page's form.
    let entered = RwSignal::new(None::<(String, Prefs)>);
    // The camera and microphone the pre-join screen opened, for the first call only.
    let preview = StoredValue::new(None::<SharedStream>);
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| {
        if let (Ok(room), Some(name)) = (room.get_untracked(), stored_name()) {
            if take_enter(&room) {
                entered.set(Some((name, stored_prefs())));
            }
        }
        hydrated.set(true);
    });
    // Bumped by "Try again": renders a fresh call.
    let attempt = RwSignal::new(0u32);

    view! {
        <Title text=move || match room.get() {
            Ok(room) => format!("{room} · confab"),
            Err(_) => "confab".to_owned(),
        }/>
        {move || match (room.get(), hydrated.get(), entered.get()) {
            (Err(e), _, _) => view! {
                <section class="card">
                    <h1>{t.no_such_room}</h1>
                    <p role="alert">{(t.room_name_error)(e)}</p>
                    <p><a href="/">{t.pick_another_room}</a></p>
                </section>
            }.into_any(),
            (Ok(_), false, _) => view! { <p class="status" role="status">{t.loading}</p> }.into_any(),
            (Ok(room), true, None) => view! {
                <PreJoin room=room on_join=move |(name, prefs, stream)| {
                    preview.set_value(stream);
                    entered.set(Some((name, prefs)));
                }/>
            }.into_any(),
            (Ok(room), true, Some((person, prefs))) => {
                attempt.track();
                let password = stored_password(&room);
                let listed = stored_listed(&room);
                let stream = preview.try_update_value(Option::take).flatten();
                view! {
                    <CallView
                        room=room
                        name=person
                        password=password
                        listed=listed
                        prefs=prefs
                        preview=stream
                        retry=move || attempt.update(|n| *n += 1)
                    />
                }
                .into_any()
            }
        }}
    }
}

/// The call: tiles, status line and controls.
#[component]
fn CallView(
    room: RoomName,
    name: String,
    password: Option<String>,
    listed: bool,
    prefs: Prefs,
    preview: Option<SharedStream>,
    retry: impl Fn() + Send + Sync + Clone + 'static,
) -> impl IntoView {
    let t = texts();
    let ui = CallUi::new(t);
    let controls = Call::start(room.to_string(), name.clone(), password, listed, prefs, preview, ui);
    {
        let call = controls.clone();
        on_cleanup(move || call.hang_up());
    }
    let needs_password = move || matches!(ui.phase.get(), Phase::NeedsPassword { .. } | Phase::PasswordWait { .. });
    let typed_password = RwSignal::new(String::new());
    let password_room = room.clone();
    let retry_with_password = {
        let retry = retry.clone();
        move |ev: SubmitEvent| {
            ev.prevent_default();
            store_password(&password_room, &typed_password.get_untracked());
            retry();
        }
    };
    let (list_name, badge_name) = (name.clone(), name.clone());
    let status = move || {
        let peers: Vec<_> = ui.tiles.with(|tiles| tiles.iter().map(|t| t.state.get()).collect());
        status_line(t, &ui.phase.get(), &peers)
    };
    let can_retry = move || matches!(ui.phase.get(), Phase::MediaFailed(_) | Phase::RoomFull);
    let in_call = move || !ui.phase.with(Phase::is_over);
    let alone = move || ui.phase.get() == Phase::InRoom && ui.tiles.with(Vec::is_empty);
    let navigate = use_navigate();
    let copied = RwSignal::new(false);
    let copy_link = move |_| {
        leptos::task::spawn_local(async move {
            if copy_page_link().await {
                copied.set(true);
                set_timeout(move || copied.set(false), std::time::Duration::from_secs(3));
            } else {
                ui.notice.set(Some(t.copy_link_fallback.into()));
            }
        });
    };

    let mute = controls.clone();
    let camera = controls.clone();
    let picker = controls.clone();
    let mic_picker = controls.clone();
    let chat = controls.clone();
    let share = controls.clone();
    let leave = controls.clone();
    let leave = move |_| {
        leave.hang_up();
        navigate("/", Default::default());
    };
    let help_open = RwSignal::new(false);
    let toggle_chat = move || {
        let open = !ui.chat_open.get_untracked();
        ui.chat_open.set(open);
        if open {
            ui.unread.set(0);
        }
    };
    // Keyboard shortcuts, in the browser, while this view lives.
    #[cfg(feature = "hydrate")]
    {
        let keys = controls.clone();
        let listener = window_event_listener(leptos::ev::keydown, move |ev: web_sys::KeyboardEvent| {
            if ev.ctrl_key() || ev.meta_key() || ev.alt_key() || ev.default_prevented() || typing_in(&ev) {
                return;
            }
            if ev.key() == "Escape" {
                help_open.set(false);
                return;
            }
            let Some(shortcut) = Shortcut::for_key(&ev.key()) else { return };
            if ui.phase.with_untracked(Phase::is_over) {
                return;
            }
            ev.prevent_default();
            match shortcut {
                Shortcut::Mute => keys.set_muted(!ui.muted.get_untracked()),
                Shortcut::Camera => keys.set_camera_off(!ui.camera_off.get_untracked()),
                Shortcut::Share => share_or_stop(&keys, !ui.sharing.get_untracked()),
                Shortcut::Chat => toggle_chat(),
                Shortcut::Help => help_open.update(|open| *open = !*open),
            }
        });
        on_cleanup(move || listener.remove());
    }
    // Who came and went, for screen readers.
    let announcement = RwSignal::new(String::new());
    {
        let previous = StoredValue::new(None::<Vec<(confab_protocol::PeerKey, String)>>);
        Effect::new(move |_| {
            let now: Vec<_> = ui.tiles.with(|tiles| tiles.iter().map(|t| (t.key.clone(), t.name.clone())).collect());
            if let Some(before) = previous.get_value() {
                let joined = now.iter().filter(|p| !before.contains(p)).map(|(_, n)| (t.joined)(n));
                let left = before.iter().filter(|p| !now.contains(p)).map(|(_, n)| (t.left)(n));
                let said: Vec<String> = joined.chain(left).collect();
                if !said.is_empty() {
                    announcement.set(said.join(". "));
                }
            }
            previous.set_value(Some(now));
        });
    }

    view! {
        <section class="call" class:alone=alone>
            <header class="call-header">
                <h1 class="room-name">{room.to_string()}</h1>
                <p class="status" role="status" aria-live="polite">{status}</p>
                <button type="button" class="copy-link" class:done=copied on:click=copy_link>
                    {move || if copied.get() { t.link_copied } else { t.copy_link }}
                </button>
                <Show when=can_retry>
                    <button type="button" class="primary" on:click={
                        let retry = retry.clone();
                        move |_| retry()
                    }>{t.try_again}</button>
                </Show>
                <Show when=needs_password>
                    <form class="password-form" on:submit=retry_with_password.clone()>
                        <label for="room-password">{t.room_password}</label>
                        <input
                            id="room-password"
                            type="password"
                            required
                            maxlength=PASSWORD_MAX_CHARS
                            autocomplete="off"
                            bind:value=typed_password
                        />
                        <button type="submit" class="primary">{t.join_with_password}</button>
                    </form>
                </Show>
                <p class="notice" role="alert">{move || ui.notice.get()}</p>
                <p class="visually-hidden" aria-live="polite">{move || announcement.get()}</p>
                <Show when=in_call>
                    <Participants name=list_name.clone() ui=ui/>
                </Show>
            </header>
            <div class="tiles" data-count=move || ui.tiles.with(Vec::len) + 1>
                <figure
                    class="tile local"
                    class:camera-off=move || ui.camera_off.get()
                    class:speaking=move || ui.speaking.with(|s| s.is_some() && *s == ui.me.get())
                >
                    <StreamVideo stream=ui.local muted=true mirrored=true label=t.your_camera.to_owned()/>
                    <Badges
                        name=badge_name
                        media=Signal::derive(move || MediaState { muted: ui.muted.get(), camera_off: ui.camera_off.get(), screen: ui.sharing.get() })
                    />
                    <figcaption>{(t.you)(&name)}</figcaption>
                </figure>
                <For each=move || ui.tiles.get() key=|tile| tile.key.clone() let:tile>
                    <RemoteView tile=tile ui=ui/>
                </For>
            </div>
            <Show when=in_call>
                <div class="controls" role="toolbar" aria-label=t.call_controls>
                    <button
                        type="button"
                        class="control"
                        class:off=move || ui.muted.get()
                        on:click={
                            let mute = mute.clone();
                            move |_| mute.set_muted(!ui.muted.get_untracked())
                        }
                    >
                        {move || if ui.muted.get() { t.unmute } else { t.mute }}
                    </button>
                    <button
                        type="button"
                        class="control"
                        class:off=move || ui.camera_off.get()
                        on:click={
                            let camera = camera.clone();
                            move |_| camera.set_camera_off(!ui.camera_off.get_untracked())
                        }
                    >
                        {move || if ui.camera_off.get() { t.camera_on } else { t.camera_off }}
                    </button>
                    <details class="devices">
                    <summary class="control">{t.devices}</summary>
                    <div class="device-list">
                    <DevicePicker
                        id="camera"
                        label=t.camera
                        devices=ui.cameras
                        current=ui.camera
                        on_pick={
                            let picker = picker.clone();
                            move |id| picker.switch_camera(id)
                        }
                    />
                    <DevicePicker
                        id="microphone"
                        label=t.microphone
                        devices=ui.microphones
                        current=ui.microphone
                        on_pick={
                            let picker = mic_picker.clone();
                            move |id| picker.switch_microphone(id)
                        }
                    />
                    <Show when=move || ui.speakers.with(|s| !s.is_empty())>
                        <DevicePicker
                            id="speaker"
                            label=t.speaker
                            devices=ui.speakers
                            current=ui.speaker
                            on_pick=move |id| ui.speaker.set(Some(id))
                        />
                    </Show>
                    </div>
                    </details>
                    <button
                        type="button"
                        class="control"
                        class:on=move || ui.sharing.get()
                        on:click={
                            let share = share.clone();
                            move |_| share_or_stop(&share, !ui.sharing.get_untracked())
                        }
                    >
                        {move || if ui.sharing.get() { t.stop_sharing } else { t.share_screen }}
                    </button>
                    <button
                        type="button"
                        class="control"
                        aria-expanded=move || ui.chat_open.get().to_string()
                        aria-controls="chat"
                        on:click=move |_| toggle_chat()
                    >
                        {t.chat}
                        {move || match ui.unread.get() {
                            0 => None,
                            n => Some(view! { <span class="unread">{n.to_string()}<span class="visually-hidden">{t.unread}</span></span> }),
                        }}
                    </button>
                    <button
                        type="button"
                        class="control"
                        aria-expanded=move || help_open.get().to_string()
                        on:click=move |_| help_open.update(|open| *open = !*open)
                    >
                        {t.shortcuts}
                    </button>
                    <button type="button" class="control leave" on:click=leave.clone()>{t.leave}</button>
                </div>
                <Show when=move || help_open.get()>
                    <section class="shortcuts" role="dialog" aria-label=t.keyboard_shortcuts>
                        <h2>{t.keyboard_shortcuts}</h2>
                        <dl>
                            {Shortcut::KEYS
                                .iter()
                                .zip(t.shortcut_help)
                                .map(|(key, what)| view! { <dt><kbd>{*key}</kbd></dt><dd>{what}</dd> })
                                .collect_view()}
                        </dl>
                        <button type="button" on:click=move |_| help_open.set(false)>{t.close}</button>
                    </section>
                </Show>
                {
                    let chat = chat.clone();
                    view! {
                        <Show when=move || ui.chat_open.get()>
                            <ChatPanel ui=ui controls=chat.clone()/>
                        </Show>
                    }
                }
            </Show>
            <Show when=move || !in_call()>
                <p class="back"><a href="/">{t.back_to_start}</a></p>
            </Show>
        </section>
    }
}

/// Starts or stops sharing the screen.
fn share_or_stop(call: &Call, on: bool) {
    if on {
        call.share_screen();
    } else {
        call.stop_sharing();
    }
}

/// The room's chat: messages with names and times, and a field to write one.
#[component]
fn ChatPanel(ui: CallUi, controls: Call) -> impl IntoView {
    let t = ui.texts;
    let draft = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let at_limit = move || draft.with(|d| d.chars().count() >= CHAT_MAX_CHARS);
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let text = draft.get_untracked().trim().to_owned();
        if text.is_empty() {
            return;
        }
        if text.chars().count() > CHAT_MAX_CHARS {
            error.set(Some((t.chat_too_long)(CHAT_MAX_CHARS)));
        } else if controls.send_chat(text) {
            draft.set(String::new());
            error.set(None);
        } else {
            error.set(Some(t.chat_offline.into()));
        }
    };
    view! {
        <aside id="chat" class="chat" aria-label=t.chat>
            <ol class="messages" aria-live="polite">
                <For each=move || ui.chat.get() key=|m| m.id let:message>
                    <li>
                        <span class="who">{message.name.to_string()}</span>
                        " "
                        <time>{clock(message.at_ms)}</time>
                        <p class="text">{message.text.clone()}</p>
                    </li>
                </For>
            </ol>
            <form on:submit=on_submit>
                <label for="chat-text" class="visually-hidden">{t.message}</label>
                <input
                    id="chat-text"
                    autocomplete="off"
                    placeholder=t.message_placeholder
                    maxlength=CHAT_MAX_CHARS
                    bind:value=draft
                />
                <button type="submit" class="primary">{t.send}</button>
                <p class="error" role="alert">
                    {move || {
                        error.get().or_else(|| {
                            at_limit().then(|| (t.chat_too_long)(CHAT_MAX_CHARS))
                        })
                    }}
                </p>
            </form>
        </aside>
    }
}

/// True if the key went to a text field (typing "m" in the chat must not mute).
#[cfg(feature = "hydrate")]
fn typing_in(ev: &web_sys::KeyboardEvent) -> bool {
    use wasm_bindgen::JsCast;
    ev.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()).is_some_and(|el| {
        matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT") || el.has_attribute("contenteditable")
    })
}

/// `HH:MM` in the viewer's time zone (browser only; chat exists only there).
fn clock(at_ms: u64) -> String {
    #[cfg(feature = "hydrate")]
    {
        // f64 holds every millisecond timestamp up to year 287,396 exactly.
        #[allow(clippy::cast_precision_loss)]
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at_ms as f64));
        format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = at_ms;
        String::new()
    }
}

/// The numbers of one connection and sparklines of what it received and its round-trip time.
#[component]
fn StatsPanel(
    name: String,
    stats: ArcRwSignal<std::collections::VecDeque<crate::stats::Sample>>,
    t: &'static Texts,
) -> impl IntoView {
    let (latest, received, rtt) = (stats.clone(), stats.clone(), stats);
    let line = |values: Vec<f64>| crate::stats::sparkline(&values, 120.0, 24.0);
    view! {
        <div class="stats" role="group" aria-label=(t.connection_to)(&name)>
            <dl>
                {move || {
                    latest
                        .with(|h| h.back().cloned().unwrap_or_default())
                        .rows(t.stat_rows)
                        .into_iter()
                        .map(|(what, value)| view! { <dt>{what}</dt><dd>{value}</dd> })
                        .collect_view()
                }}
            </dl>
            <svg viewBox="0 0 120 24" role="img" aria-label=t.received_chart>
                <polyline points=move || line(received.with(|h| h.iter().map(|s| s.kbps_in).collect()))/>
            </svg>
            <svg viewBox="0 0 120 24" role="img" aria-label=t.rtt_chart>
                <polyline points=move || line(rtt.with(|h| h.iter().map(|s| s.rtt_ms.unwrap_or(0.0)).collect()))/>
            </svg>
        </div>
    }
}

/// A labelled list of devices of one kind; picking one calls `on_pick` with its `deviceId`.
#[component]
pub(super) fn DevicePicker(
    id: &'static str,
    label: &'static str,
    devices: RwSignal<Vec<Device>>,
    current: RwSignal<Option<String>>,
    on_pick: impl Fn(String) + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <span class="device-picker">
            <label for=id>{label}</label>
            <select
                id=id
                prop:value=move || {
                    // Read the options too: the value can only be set once they exist.
                    // Nothing chosen yet: the first (the browser lists its default first).
                    current.get().or_else(|| devices.with(|d| d.first().map(|d| d.id.clone()))).unwrap_or_default()
                }
                disabled=move || devices.with(|d| d.len() < 2)
                on:change=move |ev| on_pick(event_target_value(&ev))
            >
                <For each=move || devices.get() key=|device| device.id.clone() let:device>
                    <option
                        value=device.id.clone()
                        selected=move || current.with(|c| c.as_deref() == Some(device.id.as_str()))
                    >
                        {device.label.clone()}
                    </option>
                </For>
            </select>
        </span>
    }
}

/// A remote participant's tile: their video (with sound), name, mute and camera badges, and
/// connection state.
#[component]
fn RemoteView(tile: RemoteTile, ui: CallUi) -> impl IntoView {
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

/// "Muted" and "Camera off" badges on a tile; with the camera off, the person's initial stands
/// in for the black picture.
#[component]
fn Badges(name: String, #[prop(into)] media: Signal<MediaState>) -> impl IntoView {
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

/// Who is in the call, with their mute and camera state.
#[component]
fn Participants(name: String, ui: CallUi) -> impl IntoView {
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

/// A `<video>` playing a media stream. When the browser blocks playback with sound (no click
/// on the page yet), a "Play sound" button starts it.
#[component]
pub(super) fn StreamVideo(
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
