//! The room page: the pre-join screen (unless the person came from the start page's form), then
//! the call.

mod grid;
mod prejoin;

use super::{copy_page_link, go_to};
use crate::call::Call;
use crate::components::{Badges, ChatPanel, DevicePicker, Participants, RemoteView, StreamVideo};
use crate::i18n::texts;
use crate::model::{CallUi, Prefs, SharedStream};
use crate::status::{status_line, Phase, Shortcut};
use crate::storage::{store_password, stored_listed, stored_name, stored_password, stored_prefs, take_enter};
use confab_protocol::{MediaState, RoomName, PASSWORD_MAX_CHARS};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;
use prejoin::PreJoin;

/// Who enters the call, with what (read from storage in an effect or a handler, never while
/// rendering).
#[derive(Clone)]
struct Entered {
    /// Their display name.
    name: String,
    /// Their devices and whether they join muted or with the camera off.
    prefs: Prefs,
    /// The room password this tab gave, if any.
    password: Option<String>,
    /// Ask for the room to be listed on the start page.
    listed: bool,
}

impl Entered {
    /// `name` with `prefs` enters `room`, with what this tab remembers for it.
    fn new(room: &RoomName, name: String, prefs: Prefs) -> Self {
        Entered { name, prefs, password: stored_password(room), listed: stored_listed(room) }
    }
}

/// `/room/<name>`: the call, or the reason there is none.
#[component]
pub fn RoomPage(
    /// The room's name from the path, percent-decoded; checked here.
    room: String,
) -> impl IntoView {
    let t = texts();
    let room = Memo::new(move |_| RoomName::parse(&room));
    // Who enters, with what: from the pre-join screen, or straight from the start page's form.
    let entered = RwSignal::new(None::<Entered>);
    // The camera and microphone the pre-join screen opened, handed to the call once.
    let preview = StoredValue::new(None::<SharedStream>);
    let hydrated = RwSignal::new(false);
    // Straight in from the start page: the camera and microphone are opening (a browser may be
    // asking the person for them meanwhile).
    let opening = RwSignal::new(false);
    Effect::new(move |_| {
        if let Ok(room) = room.get_untracked() {
            // The signaling socket opens now, while the pre-join screen is up (or beside the
            // camera, from the start page): joining finds it open.
            Call::connect_ahead();
            // So does the call's own code (a wasm chunk of its own): "Join now" finds it loaded.
            let _ = leptos::prelude::lazy_preload!(call_screen);
            if let Some(name) = stored_name().filter(|_| take_enter(&room)) {
                let who = Entered::new(&room, name, stored_prefs());
                // From the start page's form: the camera and microphone open now, while the
                // call's chunk loads, and the call takes them as it takes the pre-join screen's
                // (the page says so meanwhile). If they cannot open, the call tries again and
                // says why.
                #[cfg(feature = "hydrate")]
                {
                    opening.set(true);
                    leptos::task::spawn_local(async move {
                        let prefs = &who.prefs;
                        let opened = crate::media::open_camera_and_mic(
                            prefs.camera.as_deref(),
                            prefs.microphone.as_deref(),
                            false,
                        )
                        .await;
                        let stream = opened.ok().map(SharedStream::new);
                        // The page may have gone meanwhile: then nothing keeps the devices open.
                        if let Some(Some(stream)) = preview.try_set_value(stream) {
                            crate::media::stop_all(&stream.take());
                        }
                        entered.try_set(Some(who));
                        hydrated.try_set(true);
                    });
                    return;
                }
                #[cfg(not(feature = "hydrate"))]
                entered.set(Some(who));
            }
        }
        hydrated.set(true);
    });

    view! {
        // `try_get`: the server builds the head after the page has rendered, and the page's
        // signals can be disposed by then (seen once in 40 loads under load in the call-setup
        // bench, a panic in that request); the title falls back rather than panic.
        <Title text=move || match room.try_get() {
            Some(Ok(room)) => format!("{room} · confab"),
            _ => "confab".to_owned(),
        }/>
        {move || match (room.get(), hydrated.get(), entered.get()) {
            (Err(e), _, _) => view! {
                <section class="card">
                    <h1>{t.no_such_room}</h1>
                    <p role="alert">{(t.room_name_error)(e)}</p>
                    <p><a href="/" rel="external">{t.pick_another_room}</a></p>
                </section>
            }.into_any(),
            (Ok(_), false, _) => view! {
                <p class="status" role="status">{move || if opening.get() { t.starting_media } else { t.loading }}</p>
            }
            .into_any(),
            (Ok(room), true, None) => {
                let entering = room.clone();
                view! {
                    <PreJoin room=room on_join=move |(name, prefs, stream)| {
                        preview.set_value(stream);
                        entered.set(Some(Entered::new(&entering, name, prefs)));
                    }/>
                }
                .into_any()
            }
            (Ok(room), true, Some(who)) => {
                let screen = CallScreen { room, who, preview: preview.try_update_value(Option::take).flatten(), entered };
                let screen = send_wrapper::SendWrapper::new(call_screen(screen));
                Suspend::new(screen).into_any()
            }
        }}
    }
}

/// What the call needs from the room page, handed to [`call_screen`] in one value.
struct CallScreen {
    room: RoomName,
    who: Entered,
    /// The pre-join screen's open camera and microphone, if any.
    preview: Option<SharedStream>,
    /// The page's "who enters": a password typed in the call updates it, which starts a
    /// fresh call screen.
    entered: RwSignal<Option<Entered>>,
}

/// Starts the call and returns its view. Everything only the call uses (the WebRTC engine,
/// the call view, chat, stats, the protocol's decoding) is in a wasm chunk of its own
/// (`#[lazy]`, split out by `cargo leptos build --split`): the room page's first load carries
/// the pre-join screen only, and the page fetches the chunk while that screen is up.
#[lazy]
async fn call_screen(screen: CallScreen) -> AnyView {
    let CallScreen { room, who, preview, entered } = screen;
    let (call, ui) = begin_call(&room, &who, preview);
    // Hung up if this screen goes before its view is built (each view hangs up its own call;
    // hanging up twice does nothing).
    {
        let call = call.clone();
        on_cleanup(move || call.hang_up());
    }
    let first = StoredValue::new(Some((call, ui)));
    // The call's task runs first and sends the join; then the view (tens of milliseconds of
    // work) is built.
    #[cfg(feature = "hydrate")]
    gloo_timers::future::TimeoutFuture::new(0).await;
    // Bumped by "Try again": renders a fresh call.
    let attempt = RwSignal::new(0u32);
    (move || {
        attempt.track();
        let call = first.try_update_value(Option::take).flatten().unwrap_or_else(|| begin_call(&room, &who, None));
        let retry = move |password: Option<String>| match password {
            Some(password) => entered.update(|who| {
                if let Some(who) = who {
                    who.password = Some(password);
                }
            }),
            None => attempt.update(|n| *n += 1),
        };
        view! { <CallView room=room.clone() name=who.name.clone() call=call retry=retry/> }
    })
    .into_any()
}

/// Starts `who`'s call in `room` (with the pre-join screen's open camera and microphone, if
/// any), in the current reactive owner.
fn begin_call(room: &RoomName, who: &Entered, preview: Option<SharedStream>) -> (Call, CallUi) {
    let ui = CallUi::new(texts());
    let call = Call::start(
        room.to_string(),
        who.name.clone(),
        who.password.clone(),
        who.listed,
        who.prefs.clone(),
        preview,
        ui,
    );
    (call, ui)
}

/// The call: tiles, status line and controls.
#[component]
fn CallView(
    room: RoomName,
    name: String,
    /// The call this view shows (hung up when the view goes).
    call: (Call, CallUi),
    /// Starts a fresh call (with this password, if given).
    retry: impl Fn(Option<String>) + Send + Sync + Clone + 'static,
) -> impl IntoView {
    let t = texts();
    let (controls, ui) = call;
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
            let password = typed_password.get_untracked();
            store_password(&password_room, &password);
            retry(Some(password).filter(|p| !p.is_empty()));
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
        go_to("/");
    };
    let help_open = RwSignal::new(false);
    let devices_open = RwSignal::new(false);
    // The page of the grid shown (from 0), kept within the pages there are.
    let page = RwSignal::new(0_usize);
    let pages = Memo::new(move |_| grid::pages(ui.tiles.with(Vec::len)));
    let current_page = Memo::new(move |_| page.get().min(pages.get() - 1));
    let shown = move || grid::shown(ui.tiles.with(Vec::len), current_page.get());
    let toggle_chat = move || {
        let open = !ui.chat_open.get_untracked();
        ui.chat_open.set(open);
        if open {
            ui.unread.set(0);
        }
    };
    // Keyboard shortcuts, while this view lives (on the server the listener is a no-op, and
    // nothing it does shows in what is rendered).
    {
        let keys = controls.clone();
        let listener = window_event_listener(leptos::ev::keydown, move |ev: web_sys::KeyboardEvent| {
            if ev.ctrl_key() || ev.meta_key() || ev.alt_key() || ev.default_prevented() || typing_in(&ev) {
                return;
            }
            if ev.key() == "Escape" {
                help_open.set(false);
                devices_open.set(false);
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
        <section class="call" class:alone=alone class:chat-open=move || ui.chat_open.get()>
            <header class="call-header">
                <h1 class="room-name">{room.to_string()}</h1>
                <p class="status" role="status" aria-live="polite">{status}</p>
                // DTLS-SRTP ends at the SFU: people are told, where they look for the room's state.
                <Show when=move || ui.via_server.get()>
                    <p class="via-server">{t.via_server}</p>
                </Show>
                <button type="button" class="copy-link" class:done=copied on:click=copy_link>
                    {move || if copied.get() { t.link_copied } else { t.copy_link }}
                </button>
                <Show when=can_retry>
                    <button type="button" class="primary" on:click={
                        let retry = retry.clone();
                        move |_| retry(None)
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
                <Show when=move || { pages.get() > 1 }>
                    <nav class="pager" aria-label=t.pages_of_people>
                        <button
                            type="button"
                            class="control"
                            disabled=move || current_page.get() == 0
                            on:click=move |_| page.set(current_page.get_untracked().saturating_sub(1))
                        >
                            {t.previous_page}
                        </button>
                        <span>{move || (t.page_of)(current_page.get() + 1, pages.get())}</span>
                        <button
                            type="button"
                            class="control"
                            disabled=move || { current_page.get() + 1 >= pages.get() }
                            on:click=move |_| page.set(current_page.get_untracked() + 1)
                        >
                            {t.next_page}
                        </button>
                    </nav>
                </Show>
            </header>
            <div
                class="tiles"
                data-count=shown
                data-cols=move || Some(shown()).filter(|n| *n > 6).map(grid::columns)
            >
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
                    <RemoteView
                        hidden={
                            let key = tile.key.clone();
                            Signal::derive(move || {
                                let index = ui.tiles.with(|tiles| tiles.iter().position(|t| t.key == key));
                                index.is_some_and(|i| !grid::on_page(i, current_page.get()))
                            })
                        }
                        tile=tile
                        ui=ui
                    />
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
                    <div class="devices">
                    <button
                        type="button"
                        class="control"
                        aria-expanded=move || devices_open.get().to_string()
                        aria-controls="device-list"
                        on:click=move |_| devices_open.update(|open| *open = !*open)
                    >
                        {t.devices}
                    </button>
                    <div id="device-list" class="device-list" hidden=move || !devices_open.get()>
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
                    </div>
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
                <p class="back"><a href="/" rel="external">{t.back_to_start}</a></p>
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

/// True if the key went to a text field (typing "m" in the chat must not mute).
fn typing_in(ev: &web_sys::KeyboardEvent) -> bool {
    use wasm_bindgen::JsCast;
    ev.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()).is_some_and(|el| {
        matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT") || el.has_attribute("contenteditable")
    })
}
