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
    view! {
        <aside id="chat" class="chat" aria-label=t.chat>
            <ol class="messages" aria-live="polite">
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
