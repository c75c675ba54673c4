//! A camera, microphone or speaker picker.

use crate::model::Device;
use leptos::prelude::*;

/// A labelled list of devices of one kind; picking one calls `on_pick` with its `deviceId`.
/// `on_pick` is a type-erased [`Callback`]: the six pickers share one compiled component.
#[component]
pub fn DevicePicker(
    id: &'static str,
    label: &'static str,
    devices: RwSignal<Vec<Device>>,
    current: RwSignal<Option<String>>,
    #[prop(into)] on_pick: Callback<String>,
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
                on:change=move |ev| on_pick.run(event_target_value(&ev))
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
