//! The stats panel of a remote tile.

use crate::i18n::Texts;
use leptos::prelude::*;

/// The numbers of one connection and sparklines of what it received and its round-trip time.
#[component]
pub fn StatsPanel(
    name: String,
    stats: ArcRwSignal<std::collections::VecDeque<crate::stats::Sample>>,
    t: &'static Texts,
) -> impl IntoView {
    let (latest, received, rtt) = (stats.clone(), stats.clone(), stats);
    let line = |values: Vec<f64>| crate::stats::sparkline(&values, 120.0, 24.0);
    view! {
        // Focusable: in a small tile it scrolls, and must scroll from the keyboard too.
        <div class="stats" role="group" aria-label=(t.connection_to)(&name) tabindex="0">
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
