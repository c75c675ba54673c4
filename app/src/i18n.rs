//! The app's words, one catalogue per language: English and Korean (the language of the notes
//! confab grew from).
//!
//! The language is chosen on the server for each page: a `confab.lang` cookie (set by the
//! language picker) wins, else the browser's `Accept-Language`. The document's `lang` attribute
//! carries it to the browser, which hydrates with the same catalogue. Switching language sets
//! the cookie and reloads the page, so every text is plain, not reactive.

use confab_protocol::NameError;
use leptos::prelude::*;

/// A language of the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// English (the default).
    #[default]
    En,
    /// Korean.
    Ko,
}

/// The cookie the language picker sets.
pub const COOKIE: &str = "confab.lang";

impl Lang {
    /// Every language, with its name in itself, for the picker.
    pub const ALL: [(Lang, &'static str); 2] = [(Lang::En, "English"), (Lang::Ko, "한국어")];

    /// The BCP 47 code (`en`, `ko`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }

    /// The language for a code (`ko`, `ko-KR`…), if supported.
    pub fn from_code(code: &str) -> Option<Lang> {
        let primary = code.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "ko" => Some(Lang::Ko),
            _ => None,
        }
    }

    /// The best supported language of an `Accept-Language` header (by `q`), else English.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(Lang, f32)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let Some(lang) = pieces.next().and_then(Lang::from_code) else { continue };
            let q = pieces.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            if best.is_none_or(|(_, b)| q > b) {
                best = Some((lang, q));
            }
        }
        best.map_or(Lang::En, |(lang, _)| lang)
    }

    /// The language a `Cookie` header chose, if any.
    pub fn from_cookie_header(header: &str) -> Option<Lang> {
        header.split(';').find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('=').and_then(Lang::from_code))
    }

    /// The catalogue.
    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::En => &EN,
            Lang::Ko => &KO,
        }
    }
}

/// The language of this page: on the server from the request (cookie, else `Accept-Language`),
/// in the browser from the document's `lang` (which the server wrote).
pub fn page_lang() -> Lang {
    #[cfg(feature = "ssr")]
    {
        let Some(parts) = use_context::<http::request::Parts>() else { return Lang::En };
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        Lang::from_cookie_header(header(http::header::COOKIE))
            .unwrap_or_else(|| Lang::from_accept_language(header(http::header::ACCEPT_LANGUAGE)))
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        let lang = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
            .map(|e| e.get_attribute("lang"));
        lang.flatten().as_deref().and_then(Lang::from_code).unwrap_or_default()
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    Lang::En
}

/// Chooses `lang` for this browser (a cookie the server reads) and reloads the page in it.
pub fn switch_to(lang: Lang) {
    #[cfg(feature = "hydrate")]
    {
        let Some(window) = web_sys::window() else { return };
        if let Some(document) = window.document() {
            let cookie = format!("{COOKIE}={}; path=/; max-age=31536000; samesite=lax", lang.code());
            let _ = js_sys::Reflect::set(&document, &"cookie".into(), &cookie.into());
        }
        let _ = window.location().reload();
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = lang;
}

/// A picker that switches the UI's language.
#[component]
pub fn LangPicker() -> impl IntoView {
    let current = use_lang();
    view! {
        <p class="lang-picker">
            <label for="lang">{current.texts().language}</label>
            <select id="lang" on:change=move |ev| {
                if let Some(lang) = Lang::from_code(&event_target_value(&ev)) {
                    switch_to(lang);
                }
            }>
                {Lang::ALL
                    .iter()
                    .map(|(lang, name)| view! { <option value=lang.code() selected=*lang == current>{*name}</option> })
                    .collect_view()}
            </select>
        </p>
    }
}

/// The language of the page being rendered (provided by [`crate::App`]).
pub fn use_lang() -> Lang {
    use_context::<Lang>().unwrap_or_default()
}

/// The catalogue of the page being rendered.
pub fn texts() -> &'static Texts {
    use_lang().texts()
}

/// Every text the UI shows.
pub struct Texts {
    pub tagline: &'static str,
    pub room_name: &'static str,
    pub room_placeholder: &'static str,
    pub your_name: &'static str,
    pub name_placeholder: &'static str,
    pub password_optional: &'static str,
    pub password_hint: &'static str,
    pub list_room: &'static str,
    pub join_room: &'static str,
    pub open_rooms: &'static str,
    pub loading: &'static str,
    pub no_open_rooms: &'static str,
    pub people: fn(usize) -> String,
    pub has_password: &'static str,
    pub room_name_error: fn(NameError) -> String,
    pub your_name_error: fn(NameError) -> String,
    pub language: &'static str,
    pub no_such_room: &'static str,
    pub pick_another_room: &'static str,
    pub join_title: fn(&str) -> String,
    pub copy_link: &'static str,
    pub link_copied: &'static str,
    /// Said in the room's header while media goes through the server's SFU.
    pub via_server: &'static str,
    pub copy_link_fallback: &'static str,
    pub try_again: &'static str,
    pub room_password: &'static str,
    pub join_with_password: &'static str,
    pub your_camera: &'static str,
    pub you: fn(&str) -> String,
    pub mute: &'static str,
    pub unmute: &'static str,
    pub camera_off: &'static str,
    pub camera_on: &'static str,
    pub devices: &'static str,
    pub camera: &'static str,
    pub microphone: &'static str,
    pub speaker: &'static str,
    pub share_screen: &'static str,
    pub stop_sharing: &'static str,
    pub chat: &'static str,
    pub unread: &'static str,
    pub shortcuts: &'static str,
    pub leave: &'static str,
    pub call_controls: &'static str,
    pub keyboard_shortcuts: &'static str,
    pub shortcut_help: [&'static str; 5],
    pub close: &'static str,
    /// The chat panel's own close button (its visible text is `close`).
    pub close_chat: &'static str,
    pub back_to_start: &'static str,
    pub joined: fn(&str) -> String,
    pub left: fn(&str) -> String,
    pub message: &'static str,
    pub message_placeholder: &'static str,
    pub send: &'static str,
    pub chat_too_long: fn(usize) -> String,
    pub chat_offline: &'static str,
    pub video_of: fn(&str) -> String,
    pub pages_of_people: &'static str,
    pub previous_page: &'static str,
    pub next_page: &'static str,
    pub page_of: fn(usize, usize) -> String,
    pub stats: &'static str,
    pub hide_stats: &'static str,
    pub connection_to: fn(&str) -> String,
    pub received_chart: &'static str,
    pub rtt_chart: &'static str,
    pub stat_rows: [&'static str; 7],
    pub muted_badge: &'static str,
    pub camera_off_badge: &'static str,
    pub presenting: &'static str,
    pub people_count: fn(usize) -> String,
    pub participants: &'static str,
    pub muted_note: &'static str,
    pub camera_off_note: &'static str,
    pub muted_camera_off_note: &'static str,
    pub play_sound: &'static str,
    pub starting_media: &'static str,
    pub joining: &'static str,
    pub room_full: &'static str,
    pub needs_password: &'static str,
    pub wrong_password: &'static str,
    pub password_wait: fn(u64) -> String,
    pub too_many_places: &'static str,
    pub could_not_join: fn(&str) -> String,
    pub reconnecting_server: &'static str,
    pub waiting: &'static str,
    pub connected: &'static str,
    pub connection_failed_long: &'static str,
    pub reconnecting: &'static str,
    pub connecting: &'static str,
    pub connection_failed: &'static str,
    pub media_denied: &'static str,
    pub media_not_found: &'static str,
    pub media_busy: &'static str,
    pub media_unavailable: &'static str,
    pub media_insecure: &'static str,
    pub media_other: fn(&str) -> String,
    pub camera_switch_failed: &'static str,
    pub microphone_switch_failed: &'static str,
    pub screen_failed: &'static str,
    pub camera_unplugged: fn(&str) -> String,
    pub microphone_unplugged: fn(&str) -> String,
    pub speaker_unplugged: &'static str,
    pub password_not_set: &'static str,
    pub opened_elsewhere: &'static str,
    pub page_not_found: &'static str,
    pub camera_preview: &'static str,
    pub mic_level: &'static str,
    pub join_now: &'static str,
    pub start_or_join: &'static str,
}

fn en_rule(e: NameError) -> String {
    e.to_string()
}

fn ko_rule(e: NameError) -> String {
    match e {
        NameError::Empty => "비어 있으면 안 됩니다".into(),
        NameError::TooLong { max } => format!("{max}자를 넘을 수 없습니다"),
        NameError::ControlCharacter => "제어 문자를 쓸 수 없습니다".into(),
        NameError::FormatCharacter => "보이지 않는 서식 문자를 쓸 수 없습니다".into(),
    }
}

/// English.
pub static EN: Texts = Texts {
    tagline: "Video calls that go straight from browser to browser. Name a room, share its link.",
    room_name: "Room name",
    room_placeholder: "e.g. team-standup",
    your_name: "Your name",
    name_placeholder: "How others will see you",
    password_optional: "Room password (optional)",
    password_hint: "If you are first in the room, everyone after you will need this password.",
    list_room: "List this room on the start page",
    join_room: "Join room",
    open_rooms: "Open rooms",
    loading: "Loading…",
    no_open_rooms: "No open rooms right now.",
    people: |n| if n == 1 { "1 person".into() } else { format!("{n} people") },
    has_password: "password",
    room_name_error: |e| format!("The room name {}.", en_rule(e)),
    your_name_error: |e| format!("Your name {}.", en_rule(e)),
    language: "Language",
    no_such_room: "No such room",
    pick_another_room: "Pick another room",
    join_title: |room| format!("Join {room}"),
    copy_link: "Copy link",
    link_copied: "Link copied",
    via_server: "Through the server: it decrypts this call's audio and video to forward them",
    copy_link_fallback: "Copy this page's address from the address bar to invite others.",
    try_again: "Try again",
    room_password: "Room password",
    join_with_password: "Join with password",
    your_camera: "Your camera",
    you: |name| format!("{name} (you)"),
    mute: "Mute",
    unmute: "Unmute",
    camera_off: "Turn camera off",
    camera_on: "Turn camera on",
    devices: "Devices",
    camera: "Camera",
    microphone: "Microphone",
    speaker: "Speaker",
    share_screen: "Share screen",
    stop_sharing: "Stop sharing",
    chat: "Chat",
    unread: " unread",
    shortcuts: "Shortcuts",
    leave: "Leave",
    call_controls: "Call controls",
    keyboard_shortcuts: "Keyboard shortcuts",
    shortcut_help: [
        "Mute or unmute",
        "Turn the camera off or on",
        "Share the screen, or stop",
        "Open or close the chat",
        "Show or hide these shortcuts",
    ],
    close: "Close",
    close_chat: "Close chat",
    back_to_start: "Back to the start page",
    joined: |name| format!("{name} joined"),
    left: |name| format!("{name} left"),
    message: "Message",
    message_placeholder: "Message everyone",
    send: "Send",
    chat_too_long: |max| format!("A message can be at most {max} characters."),
    chat_offline: "Not connected to the server; your message was not sent. Try again in a moment.",
    video_of: |name| format!("Video of {name}"),
    pages_of_people: "Pages of people",
    previous_page: "Previous page",
    next_page: "Next page",
    page_of: |page, pages| format!("Page {page} of {pages}"),
    stats: "Stats",
    hide_stats: "Hide stats",
    connection_to: |name| format!("Connection to {name}"),
    received_chart: "Received bitrate, last 30 seconds",
    rtt_chart: "Round-trip time, last 30 seconds",
    stat_rows: ["Round trip", "Receiving", "Sending", "Packet loss", "Codec", "Video", "Frame rate"],
    muted_badge: "Muted",
    camera_off_badge: "Camera off",
    presenting: "Presenting",
    people_count: |n| format!("People ({n})"),
    participants: "Participants",
    muted_note: " (muted)",
    camera_off_note: " (camera off)",
    muted_camera_off_note: " (muted, camera off)",
    play_sound: "Play sound",
    starting_media: "Starting your camera and microphone…",
    joining: "Joining the room…",
    room_full: "Room is full. Try again later, or pick another room name.",
    needs_password: "This room has a password.",
    wrong_password: "Wrong password. Check it and try again.",
    password_wait: |secs| {
        let wait = if secs == 1 { "1 second".to_owned() } else { format!("{secs} seconds") };
        format!("Too many wrong passwords. Wait {wait}, then try again.")
    },
    too_many_places: "Too many people from your network are in calls on this server right now. \
                      Try again in a while.",
    could_not_join: |why| format!("Could not join: {why}"),
    reconnecting_server: "Reconnecting to the server… (connected calls go on)",
    waiting: "Waiting for someone to join — share this link",
    connected: "Connected",
    connection_failed_long: "Connection failed — the network between you may block calls",
    reconnecting: "Reconnecting…",
    connecting: "Connecting…",
    connection_failed: "Connection failed",
    media_denied: "Camera and microphone access is blocked. Allow both for this site \
                   (the camera icon in the address bar), then press Try again.",
    media_not_found: "No camera or microphone was found. Connect one, then press Try again.",
    media_busy: "Your camera or microphone is in use by another program. Close it, then press Try again.",
    media_unavailable: "The chosen camera is no longer available. Press Try again to use another one.",
    media_insecure: "This browser allows the camera only on secure pages. Open this site over https:// \
                     (or on localhost).",
    media_other: |detail| format!("The camera or microphone could not be started ({detail}). Press Try again."),
    camera_switch_failed: "Could not switch camera.",
    microphone_switch_failed: "Could not switch microphone.",
    screen_failed: "Could not share the screen.",
    camera_unplugged: |label| format!("Your camera was disconnected; now using {label}."),
    microphone_unplugged: |label| format!("Your microphone was disconnected; now using {label}."),
    speaker_unplugged: "Your speaker was disconnected; sound plays on the default output.",
    password_not_set: "This room was already open without a password, so yours was not set.",
    opened_elsewhere: "this call was opened again in another window",
    page_not_found: "Page not found",
    camera_preview: "Camera preview",
    mic_level: "Microphone level",
    join_now: "Join now",
    start_or_join: "Start or join a call",
};

/// Korean.
pub static KO: Texts = Texts {
    tagline: "브라우저에서 브라우저로 바로 이어지는 영상 통화. 방 이름을 정하고 링크를 공유하세요.",
    room_name: "방 이름",
    room_placeholder: "예: team-standup",
    your_name: "내 이름",
    name_placeholder: "다른 사람에게 보일 이름",
    password_optional: "방 비밀번호 (선택)",
    password_hint: "방에 처음 들어가면, 뒤에 오는 사람은 모두 이 비밀번호가 있어야 합니다.",
    list_room: "시작 페이지에 이 방 표시",
    join_room: "방 참여",
    open_rooms: "열린 방",
    loading: "불러오는 중…",
    no_open_rooms: "지금은 열린 방이 없습니다.",
    people: |n| format!("{n}명"),
    has_password: "비밀번호",
    room_name_error: |e| format!("방 이름은 {}.", ko_rule(e)),
    your_name_error: |e| format!("이름은 {}.", ko_rule(e)),
    language: "언어",
    no_such_room: "없는 방입니다",
    pick_another_room: "다른 방 고르기",
    join_title: |room| format!("{room} 참여"),
    copy_link: "링크 복사",
    link_copied: "링크 복사됨",
    via_server: "서버 경유: 서버가 전달을 위해 이 통화의 음성과 영상을 복호화합니다",
    copy_link_fallback: "다른 사람을 초대하려면 주소창에서 이 페이지 주소를 복사하세요.",
    try_again: "다시 시도",
    room_password: "방 비밀번호",
    join_with_password: "비밀번호로 참여",
    your_camera: "내 카메라",
    you: |name| format!("{name} (나)"),
    mute: "음소거",
    unmute: "음소거 해제",
    camera_off: "카메라 끄기",
    camera_on: "카메라 켜기",
    devices: "장치",
    camera: "카메라",
    microphone: "마이크",
    speaker: "스피커",
    share_screen: "화면 공유",
    stop_sharing: "공유 중지",
    chat: "채팅",
    unread: "개 읽지 않음",
    shortcuts: "단축키",
    leave: "나가기",
    call_controls: "통화 제어",
    keyboard_shortcuts: "키보드 단축키",
    shortcut_help: [
        "음소거 / 해제",
        "카메라 끄기 / 켜기",
        "화면 공유 / 중지",
        "채팅 열기 / 닫기",
        "단축키 보기 / 숨기기",
    ],
    close: "닫기",
    close_chat: "채팅 닫기",
    back_to_start: "시작 페이지로",
    joined: |name| format!("{name} 님이 들어왔습니다"),
    left: |name| format!("{name} 님이 나갔습니다"),
    message: "메시지",
    message_placeholder: "모두에게 메시지",
    send: "보내기",
    chat_too_long: |max| format!("메시지는 {max}자까지 쓸 수 있습니다."),
    chat_offline: "서버에 연결되어 있지 않아 메시지를 보내지 못했습니다. 잠시 후 다시 보내 주세요.",
    video_of: |name| format!("{name}의 영상"),
    pages_of_people: "참가자 페이지",
    previous_page: "이전 페이지",
    next_page: "다음 페이지",
    page_of: |page, pages| format!("{pages}쪽 중 {page}쪽"),
    stats: "통계",
    hide_stats: "통계 숨기기",
    connection_to: |name| format!("{name}와의 연결"),
    received_chart: "받는 비트레이트, 최근 30초",
    rtt_chart: "왕복 시간, 최근 30초",
    stat_rows: ["왕복 시간", "받는 중", "보내는 중", "패킷 손실", "코덱", "영상", "프레임 속도"],
    muted_badge: "음소거됨",
    camera_off_badge: "카메라 꺼짐",
    presenting: "발표 중",
    people_count: |n| format!("참여자 ({n})"),
    participants: "참여자",
    muted_note: " (음소거)",
    camera_off_note: " (카메라 꺼짐)",
    muted_camera_off_note: " (음소거, 카메라 꺼짐)",
    play_sound: "소리 재생",
    starting_media: "카메라와 마이크를 켜는 중…",
    joining: "방에 들어가는 중…",
    room_full: "방이 가득 찼습니다. 나중에 다시 시도하거나 다른 방 이름을 고르세요.",
    needs_password: "이 방에는 비밀번호가 있습니다.",
    wrong_password: "비밀번호가 틀렸습니다. 확인하고 다시 시도하세요.",
    password_wait: |secs| format!("비밀번호가 너무 여러 번 틀렸습니다. {secs}초 뒤에 다시 시도하세요."),
    too_many_places: "지금 이 서버에서 같은 네트워크의 통화 참여자가 너무 많습니다. 잠시 뒤에 다시 시도하세요.",
    could_not_join: |why| format!("참여할 수 없습니다: {why}"),
    reconnecting_server: "서버에 다시 연결하는 중… (연결된 통화는 계속됩니다)",
    waiting: "다른 사람을 기다리는 중 — 이 링크를 공유하세요",
    connected: "연결됨",
    connection_failed_long: "연결 실패 — 두 사람 사이의 네트워크가 통화를 막고 있을 수 있습니다",
    reconnecting: "다시 연결하는 중…",
    connecting: "연결하는 중…",
    connection_failed: "연결 실패",
    media_denied: "카메라와 마이크 사용이 막혀 있습니다. 주소창의 카메라 아이콘에서 이 사이트에 \
                   둘 다 허용한 뒤 다시 시도를 누르세요.",
    media_not_found: "카메라나 마이크를 찾지 못했습니다. 연결한 뒤 다시 시도를 누르세요.",
    media_busy: "다른 앱이 카메라나 마이크를 쓰고 있습니다. 그 앱을 닫고 다시 시도를 누르세요.",
    media_unavailable: "고른 카메라를 더 이상 쓸 수 없습니다. 다시 시도를 눌러 다른 카메라를 쓰세요.",
    media_insecure: "카메라는 보안 페이지에서만 쓸 수 있습니다: https:// 나 localhost 로 여세요.",
    media_other: |detail| format!("카메라나 마이크를 켜지 못했습니다 ({detail}). 다시 시도를 누르세요."),
    camera_switch_failed: "카메라를 바꾸지 못했습니다.",
    microphone_switch_failed: "마이크를 바꾸지 못했습니다.",
    screen_failed: "화면을 공유하지 못했습니다.",
    camera_unplugged: |label| format!("카메라 연결이 끊겨 {label}(으)로 바꿨습니다."),
    microphone_unplugged: |label| format!("마이크 연결이 끊겨 {label}(으)로 바꿨습니다."),
    speaker_unplugged: "스피커 연결이 끊겨 기본 출력으로 소리를 냅니다.",
    password_not_set: "이 방은 이미 비밀번호 없이 열려 있어, 입력한 비밀번호는 설정되지 않았습니다.",
    opened_elsewhere: "이 통화가 다른 창에서 다시 열렸습니다",
    page_not_found: "페이지를 찾을 수 없습니다",
    camera_preview: "카메라 미리보기",
    mic_level: "마이크 소리 크기",
    join_now: "지금 참여",
    start_or_join: "통화를 시작하거나 참여하기",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported() {
        assert_eq!(Lang::from_accept_language("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7"), Lang::Ko);
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9,ko;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr-FR,ko;q=0.5"), Lang::Ko);
        assert_eq!(Lang::from_accept_language("fr-FR,de"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
    }

    #[test]
    fn the_cookie_names_the_language() {
        assert_eq!(Lang::from_cookie_header("a=1; confab.lang=ko; b=2"), Some(Lang::Ko));
        assert_eq!(Lang::from_cookie_header("confab.lang=en"), Some(Lang::En));
        assert_eq!(Lang::from_cookie_header("confab.lang=xx"), None);
        assert_eq!(Lang::from_cookie_header("other=ko"), None);
    }

    #[test]
    fn both_catalogues_say_something_everywhere() {
        for texts in [&EN, &KO] {
            assert!(!texts.join_room.is_empty() && !texts.connected.is_empty());
            assert!((texts.people)(2).contains('2'));
            assert!((texts.room_name_error)(NameError::TooLong { max: 64 }).contains("64"));
            assert!(!(texts.your_name_error)(NameError::FormatCharacter).is_empty());
        }
        assert_ne!(EN.join_room, KO.join_room);
    }
}
