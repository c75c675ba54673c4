//! The room's chat panel.

use crate::call::Call;
use crate::model::CallUi;
use confab_protocol::CHAT_MAX_CHARS;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

/// The room's chat: messages with names and times, and a field to write one.
#[component]
pub fn ChatPanel(ui: CallUi, controls: Call) -> impl IntoView {
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
    // Closing from inside the panel gives the focus back to the toolbar's Chat button.
    let close_chat = move || {
        ui.chat_open.set(false);
        if let Some(toggle) = document().query_selector("[aria-controls=chat]").ok().flatten() {
            use wasm_bindgen::JsCast;
            if let Ok(toggle) = toggle.dyn_into::<web_sys::HtmlElement>() {
                let _ = toggle.focus();
            }
        }
    };
    view! {
        <aside id="chat" class="chat" aria-label=t.chat>
            <header class="chat-header">
                <h2>{t.chat}</h2>
                <button type="button" class="close" aria-label=t.close_chat on:click=move |_| close_chat()>
                    {t.close}
                </button>
            </header>
            // Focusable: a region that scrolls must scroll from the keyboard too.
            <ol class="messages" aria-live="polite" tabindex="0">
                <For each=move || ui.chat.get() key=|line| line.message.id let:line>
                    <li>
                        <span class="who">{line.message.name.to_string()}</span>
                        " "
                        <time>{line.time.clone()}</time>
                        <p class="text">{line.message.text.clone()}</p>
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
