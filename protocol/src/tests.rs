use super::*;
use serde_json::json;

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn person(name: &str) -> DisplayName {
    DisplayName::parse(name).unwrap()
}

fn candidate() -> IceCandidate {
    IceCandidate {
        candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
    }
}

/// Each variant encodes to the documented JSON and decodes back to itself.
fn assert_client_round_trip(msg: ClientMsg, expected: serde_json::Value) {
    let text = msg.to_json();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), expected);
    assert_eq!(ClientMsg::from_json(&text).unwrap(), msg);
}

fn assert_server_round_trip(msg: ServerMsg, expected: serde_json::Value) {
    let text = msg.to_json();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), expected);
    assert_eq!(ServerMsg::from_json(&text).unwrap(), msg);
}

#[test]
fn join_round_trip() {
    assert_client_round_trip(
        ClientMsg::Join {
            room: "daily".into(),
            name: "Ada".into(),
            secret: None,
            password: None,
            listed: false,
            media: MediaState::default(),
        },
        json!({"type": "join", "room": "daily", "name": "Ada", "media": {"muted": false, "camera_off": false}}),
    );
    assert_client_round_trip(
        ClientMsg::Join {
            room: "daily".into(),
            name: "Ada".into(),
            secret: Some("s".repeat(32)),
            password: Some("hunter2".into()),
            listed: false,
            media: MediaState { muted: true, camera_off: false, screen: false },
        },
        json!({"type": "join", "room": "daily", "name": "Ada", "secret": "s".repeat(32), "password": "hunter2",
               "media": {"muted": true, "camera_off": false}}),
    );
    // Secret and media may be left out.
    assert_eq!(
        ClientMsg::from_json(r#"{"type":"join","room":"r","name":"n"}"#).unwrap(),
        ClientMsg::Join {
            room: "r".into(),
            name: "n".into(),
            secret: None,
            password: None,
            listed: false,
            media: MediaState::default()
        }
    );
}

#[test]
fn signal_offer_answer_round_trip() {
    assert_client_round_trip(
        ClientMsg::Signal { to: PeerId(7), signal: Signal::Offer { sdp: "v=0".into() } },
        json!({"type": "signal", "to": 7, "signal": {"kind": "offer", "sdp": "v=0"}}),
    );
    assert_client_round_trip(
        ClientMsg::Signal { to: PeerId(8), signal: Signal::Answer { sdp: "v=0".into() } },
        json!({"type": "signal", "to": 8, "signal": {"kind": "answer", "sdp": "v=0"}}),
    );
}

#[test]
fn signal_candidate_round_trip() {
    assert_client_round_trip(
        ClientMsg::Signal { to: PeerId(1), signal: Signal::Candidate(candidate()) },
        json!({"type": "signal", "to": 1, "signal": {
            "kind": "candidate",
            "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
            "sdp_mid": "0",
            "sdp_m_line_index": 0
        }}),
    );
}

#[test]
fn candidate_without_mid_round_trip() {
    let bare = IceCandidate { candidate: "candidate:x".into(), sdp_mid: None, sdp_m_line_index: None };
    assert_client_round_trip(
        ClientMsg::Signal { to: PeerId(1), signal: Signal::Candidate(bare) },
        json!({"type": "signal", "to": 1, "signal": {"kind": "candidate", "candidate": "candidate:x"}}),
    );
}

#[test]
fn media_round_trip() {
    assert_client_round_trip(
        ClientMsg::Media(MediaState { muted: true, camera_off: true, screen: false }),
        json!({"type": "media", "muted": true, "camera_off": true}),
    );
    assert_server_round_trip(
        ServerMsg::PeerMedia { id: PeerId(3), media: MediaState { muted: false, camera_off: true, screen: false } },
        json!({"type": "peer_media", "id": 3, "media": {"muted": false, "camera_off": true}}),
    );
}

#[test]
fn secrets_are_bounded_printable_ascii() {
    assert!(valid_secret(&"a".repeat(SECRET_MIN_CHARS)));
    assert!(valid_secret(&"Z".repeat(SECRET_MAX_CHARS)));
    assert!(!valid_secret(&"a".repeat(SECRET_MIN_CHARS - 1)));
    assert!(!valid_secret(&"a".repeat(SECRET_MAX_CHARS + 1)));
    assert!(!valid_secret(&format!("{} ", "a".repeat(20))));
    assert!(!valid_secret(&"가".repeat(20)));
}

#[test]
fn chat_round_trip() {
    assert_client_round_trip(ClientMsg::Chat { text: "hello".into() }, json!({"type": "chat", "text": "hello"}));
}

#[test]
fn leave_round_trip() {
    assert_client_round_trip(ClientMsg::Leave, json!({"type": "leave"}));
}

#[test]
fn welcome_round_trip() {
    assert_server_round_trip(
        ServerMsg::Welcome {
            id: PeerId(2),
            key: PeerKey("k2".into()),
            room: room("daily"),
            peers: vec![PeerInfo {
                id: PeerId(1),
                name: person("Ada"),
                key: PeerKey("k1".into()),
                media: MediaState { muted: true, camera_off: false, screen: false },
            }],
            ice_servers: vec![
                IceServer { urls: vec!["stun:stun.example:3478".into()], username: None, credential: None },
                IceServer {
                    urls: vec!["turn:turn.example:3478".into()],
                    username: Some("u".into()),
                    credential: Some("p".into()),
                },
            ],
            resumed: false,
            ice_transport_policy: IceTransportPolicy::Relay,
            locked: true,
            chat: vec![ChatMessage {
                id: 9,
                from: PeerKey("k1".into()),
                name: person("Ada"),
                text: "<b>hi</b>".into(),
                at_ms: 1_700_000_000_000,
            }],
            sfu_from: None,
        },
        json!({
            "type": "welcome", "id": 2, "key": "k2", "room": "daily", "resumed": false,
            "ice_transport_policy": "relay", "locked": true,
            "chat": [{"id": 9, "from": "k1", "name": "Ada", "text": "<b>hi</b>", "at_ms": 1_700_000_000_000u64}],
            "peers": [{"id": 1, "name": "Ada", "key": "k1", "media": {"muted": true, "camera_off": false}}],
            "ice_servers": [
                {"urls": ["stun:stun.example:3478"]},
                {"urls": ["turn:turn.example:3478"], "username": "u", "credential": "p"}
            ]
        }),
    );
}

#[test]
fn peer_joined_and_left_round_trip() {
    assert_server_round_trip(
        ServerMsg::PeerJoined {
            peer: PeerInfo {
                id: PeerId(3),
                name: person("Grace"),
                key: PeerKey("k3".into()),
                media: MediaState::default(),
            },
        },
        json!({"type": "peer_joined", "peer": {"id": 3, "name": "Grace", "key": "k3",
               "media": {"muted": false, "camera_off": false}}}),
    );
    assert_server_round_trip(ServerMsg::PeerLeft { id: PeerId(3) }, json!({"type": "peer_left", "id": 3}));
}

#[test]
fn relayed_signal_round_trip() {
    assert_server_round_trip(
        ServerMsg::Signal { from: PeerId(4), signal: Signal::Answer { sdp: "v=0".into() } },
        json!({"type": "signal", "from": 4, "signal": {"kind": "answer", "sdp": "v=0"}}),
    );
    assert_server_round_trip(
        ServerMsg::Signal { from: PeerId(4), signal: Signal::Candidate(candidate()) },
        json!({"type": "signal", "from": 4, "signal": {
            "kind": "candidate",
            "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
            "sdp_mid": "0",
            "sdp_m_line_index": 0
        }}),
    );
}

#[test]
fn error_round_trip_for_every_code() {
    let codes = [
        (ErrorCode::BadMessage, "bad_message"),
        (ErrorCode::BinaryFrame, "binary_frame"),
        (ErrorCode::TooLarge, "too_large"),
        (ErrorCode::InvalidRoom, "invalid_room"),
        (ErrorCode::InvalidName, "invalid_name"),
        (ErrorCode::RoomFull, "room_full"),
        (ErrorCode::AlreadyJoined, "already_joined"),
        (ErrorCode::NotJoined, "not_joined"),
        (ErrorCode::UnknownPeer, "unknown_peer"),
        (ErrorCode::InvalidSecret, "invalid_secret"),
        (ErrorCode::PasswordRequired, "password_required"),
        (ErrorCode::WrongPassword, "wrong_password"),
        (ErrorCode::InvalidPassword, "invalid_password"),
        (ErrorCode::ServerFull, "server_full"),
        (ErrorCode::InvalidChat, "invalid_chat"),
        (ErrorCode::RateLimited, "rate_limited"),
        (ErrorCode::TooManyJoins, "too_many_joins"),
        (ErrorCode::TooManyPlaces, "too_many_places"),
        (ErrorCode::TooManyAttempts, "too_many_attempts"),
        (ErrorCode::SfuUnavailable, "sfu_unavailable"),
        (ErrorCode::SfuRefused, "sfu_refused"),
    ];
    for (code, wire) in codes {
        assert_eq!(code.as_str(), wire);
        assert_server_round_trip(
            ServerMsg::error(code, "why"),
            json!({"type": "error", "code": wire, "message": "why"}),
        );
    }
}

#[test]
fn errors_that_time_lifts_say_when_to_try_again() {
    assert_server_round_trip(
        ServerMsg::error_retry_after(ErrorCode::TooManyAttempts, "wait", 1500),
        json!({"type": "error", "code": "too_many_attempts", "message": "wait", "retry_after_ms": 1500}),
    );
    // Older servers sent no such field.
    assert_eq!(
        ServerMsg::from_json(r#"{"type":"error","code":"too_many_joins","message":"m"}"#).unwrap(),
        ServerMsg::error(ErrorCode::TooManyJoins, "m")
    );
}

#[test]
fn unknown_type_and_missing_fields_are_rejected() {
    assert!(ClientMsg::from_json(r#"{"type":"dance"}"#).is_err());
    assert!(ClientMsg::from_json(r#"{"type":"join","room":"a"}"#).is_err());
    assert!(ClientMsg::from_json(r#"{"type":"signal","to":"x","signal":{"kind":"offer","sdp":""}}"#).is_err());
    assert!(ClientMsg::from_json("not json").is_err());
    // A client cannot claim a sender: `from` is not a field of its messages.
    let forged = r#"{"type":"signal","to":1,"from":99,"signal":{"kind":"offer","sdp":"v=0"}}"#;
    assert_eq!(
        ClientMsg::from_json(forged).unwrap(),
        ClientMsg::Signal { to: PeerId(1), signal: Signal::Offer { sdp: "v=0".into() } }
    );
}

#[test]
fn room_names_are_trimmed_and_bounded() {
    assert_eq!(room("  stand-up  ").as_str(), "stand-up");
    assert_eq!(room("회의실").as_str(), "회의실");
    assert_eq!(RoomName::parse("   "), Err(NameError::Empty));
    assert_eq!(RoomName::parse(""), Err(NameError::Empty));
    let longest = "가".repeat(RoomName::MAX_CHARS);
    assert_eq!(room(&longest).as_str(), longest, "the limit counts characters, not bytes");
    assert_eq!(
        RoomName::parse(&"a".repeat(RoomName::MAX_CHARS + 1)),
        Err(NameError::TooLong { max: RoomName::MAX_CHARS })
    );
    assert_eq!(RoomName::parse("a\nb"), Err(NameError::ControlCharacter));
}

#[test]
fn display_names_are_trimmed_and_bounded() {
    assert_eq!(person(" Ada ").as_str(), "Ada");
    assert_eq!(DisplayName::parse(""), Err(NameError::Empty));
    assert_eq!(
        DisplayName::parse(&"x".repeat(DisplayName::MAX_CHARS + 1)),
        Err(NameError::TooLong { max: DisplayName::MAX_CHARS })
    );
    assert_eq!(DisplayName::parse("a\u{7}"), Err(NameError::ControlCharacter));
}

#[test]
fn names_are_validated_when_decoded() {
    let bad = r#"{"type":"peer_joined","peer":{"id":1,"name":"   ","key":"k"}}"#;
    assert!(ServerMsg::from_json(bad).is_err());
}

#[test]
fn name_errors_read_as_sentences() {
    assert_eq!(NameError::Empty.to_string(), "must not be empty");
    assert_eq!(NameError::TooLong { max: 64 }.to_string(), "must be at most 64 characters");
    assert_eq!(NameError::FormatCharacter.to_string(), "must not contain invisible formatting characters");
}

#[test]
fn names_with_format_characters_are_refused() {
    // A right-to-left override makes "Ada\u{202E}txt.exe" read as "Adaexe.txt"; zero-width and
    // bidi characters let a name pass for another one.
    for bad in [
        "Ada\u{202E}txt.exe",
        "A\u{200B}da",
        "\u{200D}Ada",
        "Ada\u{2066}",
        "\u{FEFF}Ada",
        "Ad\u{00AD}a",
        "Ada\u{E0041}",
        "Ada\u{061C}",
        "A\u{200D}da",
        "Ada\u{200C}",
        "می\u{200C}\u{200C}خواهم",
        "Ada \u{200D}🎉",
    ] {
        assert_eq!(DisplayName::parse(bad), Err(NameError::FormatCharacter), "{bad:?}");
        assert_eq!(RoomName::parse(bad), Err(NameError::FormatCharacter), "{bad:?}");
    }
    assert!(is_format_character('\u{202E}'));
    assert!(!is_format_character('a'));
    assert!(!is_format_character('가'));
    assert!(!is_format_character(' '));
    // Names in other scripts, with accents or emoji stay welcome.
    // The joiners inside words of scripts that need them, and inside emoji sequences, too.
    for good in [
        "회의실",
        "José",
        "Zoë 🎉",
        "محمد",
        "שלום",
        "Ada Lovelace",
        "می\u{200C}خواهم",
        "क्\u{200D}ष",
        "Ada 👨\u{200D}👩\u{200D}👧",
    ] {
        assert_eq!(person(good).as_str(), good);
    }
}

#[test]
fn names_are_compared_in_nfc() {
    // "é" typed as e + combining acute accent is the same name as the precomposed é.
    let decomposed = person("Jose\u{301}");
    assert_eq!(decomposed.as_str(), "Jos\u{e9}");
    assert_eq!(decomposed, person("Jos\u{e9}"));
    assert_eq!(room("cafe\u{301}"), room("caf\u{e9}"));
    // Korean typed as separate jamo composes into syllables.
    assert_eq!(person("\u{1100}\u{1161}").as_str(), "가");
    // The limit counts characters after normalization.
    let accented = "e\u{301}".repeat(DisplayName::MAX_CHARS);
    assert_eq!(person(&accented).as_str().chars().count(), DisplayName::MAX_CHARS);
    // Decoding normalizes too, so both sides agree on what arrived.
    let msg = r#"{"type":"peer_joined","peer":{"id":1,"name":"Jose\u0301","key":"k"}}"#;
    match ServerMsg::from_json(msg).unwrap() {
        ServerMsg::PeerJoined { peer } => assert_eq!(peer.name.as_str(), "Jos\u{e9}"),
        other => panic!("{other:?}"),
    }
    let bidi = r#"{"type":"peer_joined","peer":{"id":1,"name":"Ada\u202e","key":"k"}}"#;
    assert!(ServerMsg::from_json(bidi).is_err());
}

#[test]
fn sfu_messages_round_trip() {
    assert_client_round_trip(
        ClientMsg::Sfu { signal: Signal::Offer { sdp: "v=0".into() } },
        json!({"type": "sfu", "signal": {"kind": "offer", "sdp": "v=0"}}),
    );
    assert_client_round_trip(
        ClientMsg::SfuLayers {
            layers: vec![
                SfuLayer { peer: PeerId(3), layer: VideoLayer::Low },
                SfuLayer { peer: PeerId(4), layer: VideoLayer::Off },
            ],
        },
        json!({"type": "sfu_layers", "layers": [{"peer": 3, "layer": "low"}, {"peer": 4, "layer": "off"}]}),
    );
    assert_server_round_trip(
        ServerMsg::Sfu {
            signal: Signal::Offer { sdp: "v=0".into() },
            tracks: vec![
                SfuTrack { mid: "2".into(), peer: PeerId(3), kind: TrackKind::Audio },
                SfuTrack { mid: "3".into(), peer: PeerId(3), kind: TrackKind::Video },
            ],
        },
        json!({
            "type": "sfu", "signal": {"kind": "offer", "sdp": "v=0"},
            "tracks": [{"mid": "2", "peer": 3, "kind": "audio"}, {"mid": "3", "peer": 3, "kind": "video"}]
        }),
    );
    // An answer carries no track list.
    assert_server_round_trip(
        ServerMsg::Sfu { signal: Signal::Answer { sdp: "v=0".into() }, tracks: vec![] },
        json!({"type": "sfu", "signal": {"kind": "answer", "sdp": "v=0"}}),
    );
    assert_server_round_trip(
        ServerMsg::SfuClosed { reason: "gone".into() },
        json!({"type": "sfu_closed", "reason": "gone"}),
    );
    assert_server_round_trip(
        ServerMsg::ActiveSpeaker { id: Some(PeerId(3)) },
        json!({"type": "active_speaker", "id": 3}),
    );
    assert_server_round_trip(ServerMsg::ActiveSpeaker { id: None }, json!({"type": "active_speaker", "id": null}));
    // The layers are ordered as their sizes.
    assert!(VideoLayer::Off < VideoLayer::Low && VideoLayer::Medium < VideoLayer::High);
}

#[test]
fn a_welcome_names_the_sfu_threshold_only_when_there_is_one() {
    let welcome = |sfu_from| ServerMsg::Welcome {
        id: PeerId(1),
        key: PeerKey("k".into()),
        room: room("r"),
        peers: vec![],
        ice_servers: vec![],
        resumed: false,
        ice_transport_policy: IceTransportPolicy::All,
        locked: false,
        chat: vec![],
        sfu_from,
    };
    assert!(!welcome(None).to_json().contains("sfu_from"));
    assert!(welcome(Some(3)).to_json().contains(r#""sfu_from":3"#));
    assert_eq!(ServerMsg::from_json(&welcome(Some(3)).to_json()).unwrap(), welcome(Some(3)));
}
