//! The confab web app. The server renders every page; in the browser the same components
//! hydrate and the room page runs the call.
//!
//! # Layout
//! - [`App`] and [`shell`]: the page switch and the HTML document around it.
//! - `pages/`: one module per screen — [`pages::home`] (pick a room and a name, open rooms) and
//!   [`pages::room`] (the pre-join screen, then the call). A page imports components, never
//!   another page.
//! - [`components`]: the views the screens are made of (tiles, video, pickers, chat, stats…).
//! - [`model`]: the signals the call page renders; [`status`] and [`stats`]: what it says, as
//!   pure functions; [`i18n`]: every text, in English and Korean; [`storage`]: what the browser
//!   remembers.
//! - `call`: the WebRTC engine (in the server build an inert handle with the same methods, so
//!   `cfg(feature = "hydrate")` lives in one place); `media` (browser build only):
//!   camera/microphone access.
//!
//! Features: `ssr` for the server build, `hydrate` for the wasm build. Browser APIs are touched
//! only in effects, event handlers and the browser-only modules.

// The call page's view is one deeply nested static type; the release build needs room for it.
#![recursion_limit = "256"]

mod call;
pub mod components;
pub mod i18n;
#[cfg(feature = "hydrate")]
mod media;
pub mod model;
pub mod pages;
pub mod stats;
pub mod status;
pub mod storage;

use leptos::either::EitherOf3;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
#[cfg(feature = "ssr")]
use leptos_router::components::Router;
use pages::Page;

/// The HTML document the server sends around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let lang = i18n::page_lang();
    // The start page hydrates with its own, smaller bundle when the server has one, and names
    // the room page's files so that they can be fetched ahead.
    let (scripts, room_assets, split_loader) = match start_bundle() {
        Some(StartBundle { options: start, room_assets }) => (start, Some(room_assets.join(" ")), None),
        None => (options.clone(), None, split_loader()),
    };
    view! {
        <!DOCTYPE html>
        <html lang=lang.code()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="dark light"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HashedStylesheet id="leptos" options=options.clone()/>
                <HydrationScripts options=scripts/>
                {split_loader.map(|SplitLoader(url)| view! { <link rel="modulepreload" href=url/> })}
                {room_assets.map(|urls| view! { <meta name=ROOM_ASSETS_META content=urls/> })}
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The start page's own bundle (built by `scripts/start-bundle.sh` with the `start-page`
/// feature): only the start page: about a third of the whole app. The server finds it at
/// start-up and provides it to each render; the start page (`/`) then loads it instead of the
/// full bundle.
#[derive(Clone, Debug)]
pub struct StartBundle {
    /// Options whose output name and hash file name the start bundle's script and wasm.
    pub options: LeptosOptions,
    /// The full bundle's script and wasm (URLs), which the start page fetches ahead once someone
    /// starts filling in its form, so that the room page loads them from the cache.
    pub room_assets: Vec<String>,
}

/// The URL of the module that loads the full bundle's split-off wasm chunks (`cargo leptos
/// build --split`), provided by the server when the site has one. The full bundle's script
/// imports it: naming it in the head lets the browser fetch both at once, not one after the
/// other.
#[derive(Clone, Debug)]
pub struct SplitLoader(pub String);

/// The split loader, when this render loads the full bundle and the server has one.
fn split_loader() -> Option<SplitLoader> {
    #[cfg(feature = "ssr")]
    return use_context::<SplitLoader>();
    #[cfg(not(feature = "ssr"))]
    None
}

/// The `<meta name>` under which the start page lists [`StartBundle::room_assets`].
pub const ROOM_ASSETS_META: &str = "confab-room-assets";

/// The start bundle, when this render is the start page's and the server has one.
fn start_bundle() -> Option<StartBundle> {
    #[cfg(feature = "ssr")]
    {
        let parts = use_context::<http::request::Parts>()?;
        (parts.uri.path() == "/").then(use_context::<StartBundle>).flatten()
    }
    #[cfg(not(feature = "ssr"))]
    None
}

/// The app: a home page and one page per room.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_context(i18n::page_lang());
    // The server renders with a router, for the request's path. The browser has none: it moves
    // between pages only by page loads, and `Router` renders just its children, so the
    // server's HTML hydrates the same without it.
    #[cfg(feature = "ssr")]
    let view = view! {
        <Title text="confab"/>
        <Router>
            <main>
                <Pages/>
            </main>
        </Router>
    };
    #[cfg(not(feature = "ssr"))]
    let view = view! {
        <Title text="confab"/>
        <main>
            <Pages/>
        </main>
    };
    view
}

/// The page for the current location (see [`Page`]).
#[component]
fn Pages() -> impl IntoView {
    #[cfg(feature = "ssr")]
    let path = leptos_router::hooks::use_location().pathname.get_untracked();
    // The page's own path, which never changes without a page load.
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    let path = web_sys::window().and_then(|w| w.location().pathname().ok()).unwrap_or_default();
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    let path = String::new();
    match Page::of(&path) {
        Page::Home => EitherOf3::A(view! { <pages::home::HomePage/> }),
        #[cfg(not(feature = "start-page"))]
        Page::Room(room) => EitherOf3::B(view! { <pages::room::RoomPage room=room/> }),
        // The start page's bundle is only ever sent with the start page.
        #[cfg(feature = "start-page")]
        Page::Room(_) => EitherOf3::B(()),
        Page::NotFound => EitherOf3::C(view! { <pages::NotFound/> }),
    }
}

/// The paths the server renders the app for, as a router the server reads its route list from
/// (`leptos_axum::generate_route_list`). Not in the wasm: the app itself switches on [`Page`].
#[cfg(feature = "ssr")]
pub fn server_routes() -> impl IntoView {
    use leptos_router::components::{Route, Routes};
    use leptos_router::path;
    view! {
        <Router>
            <Routes fallback=|| ()>
                <Route path=path!("/") view=|| ()/>
                <Route path=path!("/room/:room") view=|| ()/>
            </Routes>
        </Router>
    }
}

/// The wasm entry point: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    // Event handlers are attached now: lets styles (and tests) tell a page that responds from
    // one still loading.
    if let Some(root) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
        let _ = root.set_attribute("data-hydrated", "");
    }
}
