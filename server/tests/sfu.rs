//! The SFU through the signaling socket: participants are media bots (str0m WebRTC endpoints
//! over loopback UDP, `confab_media::bot`) whose offers and answers travel as the browsers' do,
//! in `sfu` messages on `/ws`.

use crate::common::*;
use confab_media::bot::{Bot, BotOptions, BotReport};
use confab_media::{MediaConfig, MediaStats, ParticipantId, TrackInfo};
use confab_protocol::{SfuLayer, TrackKind, VideoLayer};
use confab_server::Sfu;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The tracks of an SFU message as the bot takes them.
fn track_infos(tracks: Vec<confab_protocol::SfuTrack>) -> Vec<TrackInfo> {
    tracks
        .into_iter()
        .map(|t| TrackInfo {
            mid: t.mid,
            source: ParticipantId(t.peer.0),
            kind: match t.kind {
                TrackKind::Audio => confab_media::TrackKind::Audio,
                TrackKind::Video => confab_media::TrackKind::Video,
            },
        })
        .collect()
}

fn with_sfu(from: u16) -> HubConfig {
    let media = confab_media::spawn(MediaConfig::default()).expect("the media engine binds");
    HubConfig {
        stun_urls: vec![],
        limits: Limits::rooms_of(10),
        sfu: Some(Sfu { media, from }),
        ..HubConfig::default()
    }
}

/// A joined socket with a bot on its SFU connection, run in a task: its report, and each
/// track list the SFU offered.
struct OnSfu {
    id: PeerId,
    report: watch::Receiver<BotReport>,
    offers: watch::Receiver<Vec<Vec<(PeerId, TrackKind)>>>,
    /// Every `active_speaker` the server sent, in order.
    speakers: watch::Receiver<Vec<Option<PeerId>>>,
    outbox: tokio::sync::mpsc::Sender<ClientMsg>,
    task: JoinHandle<Client>,
}

impl OnSfu {
    async fn start(client: Client, id: PeerId) -> OnSfu {
        OnSfu::start_with(client, id, BotOptions::default()).await
    }

    async fn start_with(mut client: Client, id: PeerId, options: BotOptions) -> OnSfu {
        let mut bot = Bot::new(std::net::Ipv4Addr::LOCALHOST.into(), options).unwrap();
        client.send(&ClientMsg::Sfu { signal: Signal::Offer { sdp: bot.offer() } }).await;
        let (report_tx, report) = watch::channel(BotReport::default());
        let (offers_tx, offers) = watch::channel(Vec::new());
        let (speakers_tx, speakers) = watch::channel(Vec::new());
        let (outbox, mut to_send) = tokio::sync::mpsc::channel::<ClientMsg>(8);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    frame = client.ws.next() => {
                        let text = match frame {
                            Some(Ok(Message::Text(text))) => text,
                            Some(Ok(_)) => continue,
                            _ => return client,
                        };
                        match ServerMsg::from_json(&text).unwrap() {
                            ServerMsg::Sfu { signal: Signal::Answer { sdp }, tracks } => {
                                bot.accept_answer(&sdp, &track_infos(tracks)).unwrap();
                            }
                            ServerMsg::Sfu { signal: Signal::Offer { sdp }, tracks } => {
                                offers_tx.send_modify(|o| o.push(tracks.iter().map(|t| (t.peer, t.kind)).collect()));
                                let answer = bot.accept_offer(&sdp, &track_infos(tracks)).unwrap();
                                client.send(&ClientMsg::Sfu { signal: Signal::Answer { sdp: answer } }).await;
                            }
                            ServerMsg::ActiveSpeaker { id } => speakers_tx.send_modify(|s| s.push(id)),
                            ServerMsg::Error { code, message, .. } => panic!("{code:?}: {message}"),
                            _ => {}
                        }
                    }
                    Some(msg) = to_send.recv() => client.send(&msg).await,
                    result = bot.run_for(Duration::from_millis(20)) => {
                        result.unwrap();
                        report_tx.send_replace(bot.report().clone());
                    }
                }
            }
        });
        OnSfu { id, report, offers, speakers, outbox, task }
    }

    /// Waits until the bot has seen `frames` video frames and packets of audio from `source`.
    async fn until_media_from(&mut self, source: PeerId, frames: u64) {
        let limit = Duration::from_secs(10);
        let seen = tokio::time::timeout(
            limit,
            self.report.wait_for(|r| {
                r.sources
                    .get(&ParticipantId(source.0))
                    .is_some_and(|s| s.video_frames >= frames && s.audio_packets >= frames)
            }),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        assert!(seen, "{} never got {frames} frames from {source}: {:#?}", self.id, *self.report.borrow());
    }
}

impl Drop for OnSfu {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_room_calls_through_the_sfu() {
    let server = TestServer::with(with_sfu(3)).await;
    let mut first = server.connect().await;
    first.send(&join_msg("sfu-room", "Ada")).await;
    let ServerMsg::Welcome { id: ada, sfu_from, .. } = first.recv().await else { panic!("no welcome") };
    assert_eq!(sfu_from, Some(3), "the welcome names the threshold");
    let (bob_client, bob) = server.join("sfu-room", "Bob").await;
    let (cy_client, cy) = server.join("sfu-room", "Cy").await;
    let mut people =
        vec![OnSfu::start(first, ada).await, OnSfu::start(bob_client, bob).await, OnSfu::start(cy_client, cy).await];
    let ids = [ada, bob, cy];
    for p in &mut people {
        let me = p.id;
        for &other in ids.iter().filter(|&&o| o != me) {
            p.until_media_from(other, 30).await;
        }
    }
    // One connection each on the server: three participants.
    let media = &server.hub.sfu.as_ref().unwrap().media;
    assert_eq!(MediaStats::get(&media.stats().participants), 3);
    // Each was offered the two others' audio and video.
    for p in &people {
        let offers = p.offers.borrow().clone();
        let mut last = offers.last().cloned().unwrap_or_default();
        last.sort_by_key(|(peer, kind)| (peer.0, *kind == TrackKind::Video));
        let mut expected: Vec<_> =
            ids.iter().filter(|&&o| o != p.id).flat_map(|&o| [(o, TrackKind::Audio), (o, TrackKind::Video)]).collect();
        expected.sort_by_key(|(peer, kind)| (peer.0, *kind == TrackKind::Video));
        assert_eq!(last, expected, "the tracks offered to {}", p.id);
    }
}

#[tokio::test]
async fn the_sfu_names_the_active_speaker_over_the_socket() {
    let server = TestServer::with(with_sfu(3)).await;
    let loud = BotOptions { audio_level: -20, ..BotOptions::default() };
    let silent = BotOptions { audio_level: -127, ..BotOptions::default() };
    let mut people = Vec::new();
    for (name, options) in [("Ada", loud), ("Bob", silent), ("Cy", silent)] {
        let (client, id) = server.join("speaking", name).await;
        people.push(OnSfu::start_with(client, id, options).await);
    }
    let ada = people[0].id;
    for p in &mut people {
        let named =
            tokio::time::timeout(Duration::from_secs(10), p.speakers.wait_for(|s| s.last() == Some(&Some(ada))))
                .await
                .is_ok_and(|r| r.is_ok());
        assert!(named, "{} was never told Ada speaks: {:?}", p.id, *p.speakers.borrow());
    }
    // Ada goes: the others hear that nobody speaks.
    let ada_socket = people.remove(0);
    drop(ada_socket);
    for p in &mut people {
        let named = tokio::time::timeout(Duration::from_secs(10), p.speakers.wait_for(|s| s.last() == Some(&None)))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(named, "{} was never told nobody speaks: {:?}", p.id, *p.speakers.borrow());
    }
}

#[tokio::test]
async fn layers_asked_for_over_the_socket_reach_the_sfu() {
    let server = TestServer::with(with_sfu(2)).await;
    let (a_client, a) = server.join("layers", "Ada").await;
    let (b_client, b) = server.join("layers", "Bob").await;
    let mut ada = OnSfu::start(a_client, a).await;
    let mut bob = OnSfu::start(b_client, b).await;
    ada.until_media_from(b, 10).await;
    bob.until_media_from(a, 10).await;
    // Ada hides Bob's tile: his video stops reaching her, his voice does not.
    ada.outbox.send(ClientMsg::SfuLayers { layers: vec![SfuLayer { peer: b, layer: VideoLayer::Off }] }).await.unwrap();
    let stalled =
        |r: &BotReport| r.sources.get(&ParticipantId(b.0)).map_or((0, 0), |s| (s.video_frames, s.audio_packets));
    // Wait until video stops growing while audio goes on (no fixed sleep: 20 audio packets is
    // 400 ms of Bob's voice).
    let mut before = stalled(&ada.report.borrow());
    let stopped = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            ada.report.changed().await.unwrap();
            let now = stalled(&ada.report.borrow());
            if now.1 >= before.1 + 20 {
                if now.0 == before.0 {
                    return;
                }
                before = now;
            }
        }
    })
    .await;
    assert!(stopped.is_ok(), "Bob's video kept coming: {:#?}", *ada.report.borrow());
    ada.outbox
        .send(ClientMsg::SfuLayers { layers: vec![SfuLayer { peer: b, layer: VideoLayer::High }] })
        .await
        .unwrap();
    let (video, _) = stalled(&ada.report.borrow());
    ada.until_media_from(b, video + 10).await;
}

#[tokio::test]
async fn layers_asked_for_before_the_offer_are_kept_for_the_connection() {
    let server = TestServer::with(with_sfu(2)).await;
    let (mut a_client, a) = server.join("early-layers", "Ada").await;
    let (b_client, b) = server.join("early-layers", "Bob").await;
    // A browser may ask for layers while its offer is still on the way: Ada hides Bob's tile
    // before her SFU connection exists.
    a_client.send(&ClientMsg::SfuLayers { layers: vec![SfuLayer { peer: b, layer: VideoLayer::Off }] }).await;
    let mut ada = OnSfu::start(a_client, a).await;
    let mut bob = OnSfu::start(b_client, b).await;
    bob.until_media_from(a, 10).await;
    // Bob's voice reaches her (50 packets: a second of it), his video does not.
    let heard = tokio::time::timeout(
        Duration::from_secs(10),
        ada.report.wait_for(|r| r.sources.get(&ParticipantId(b.0)).is_some_and(|s| s.audio_packets >= 50)),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    assert!(heard, "Bob's voice did not reach Ada: {:#?}", *ada.report.borrow());
    let video = ada.report.borrow().sources.get(&ParticipantId(b.0)).map_or(0, |s| s.video_frames);
    assert_eq!(video, 0, "Bob's video reached Ada, who had hidden it before connecting");
    ada.outbox
        .send(ClientMsg::SfuLayers { layers: vec![SfuLayer { peer: b, layer: VideoLayer::High }] })
        .await
        .unwrap();
    ada.until_media_from(b, 10).await;
}

#[tokio::test]
async fn leaving_withdraws_the_leavers_tracks() {
    let server = TestServer::with(with_sfu(2)).await;
    let (a_client, a) = server.join("leave", "Ada").await;
    let (b_client, b) = server.join("leave", "Bob").await;
    let mut ada = OnSfu::start(a_client, a).await;
    let bob = OnSfu::start(b_client, b).await;
    ada.until_media_from(b, 10).await;
    let before = ada.offers.borrow().len();
    bob.outbox.send(ClientMsg::Leave).await.unwrap();
    let withdrawn = tokio::time::timeout(
        Duration::from_secs(5),
        ada.offers.wait_for(|o| o.len() > before && o.last().is_some_and(|t| t.is_empty())),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    assert!(withdrawn, "no offer without Bob's tracks: {:?}", *ada.offers.borrow());
    let media = &server.hub.sfu.as_ref().unwrap().media;
    assert_eq!(MediaStats::get(&media.stats().participants), 1);
    // A socket that closes lets go of its SFU connection too.
    drop(ada);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while MediaStats::get(&media.stats().participants) > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the closed socket's SFU connection stayed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn every_sfu_message_has_a_defined_answer() {
    // No SFU on this server.
    let plain = TestServer::start().await;
    let (mut client, _) = plain.join("mesh", "Ada").await;
    client.send(&ClientMsg::Sfu { signal: Signal::Offer { sdp: "v=0".into() } }).await;
    client.expect_error(ErrorCode::SfuUnavailable).await;
    client.send(&ClientMsg::SfuLayers { layers: vec![] }).await;
    client.expect_error(ErrorCode::SfuUnavailable).await;

    let server = TestServer::with(with_sfu(3)).await;
    let mut lobby = server.connect().await;
    lobby.send(&ClientMsg::Sfu { signal: Signal::Offer { sdp: "v=0".into() } }).await;
    lobby.expect_error(ErrorCode::NotJoined).await;
    lobby.send(&ClientMsg::SfuLayers { layers: vec![] }).await;
    lobby.expect_error(ErrorCode::NotJoined).await;

    let (mut client, _) = server.join("bad", "Ada").await;
    client.send(&ClientMsg::Sfu { signal: Signal::Offer { sdp: "not an sdp".into() } }).await;
    client.expect_error(ErrorCode::SfuRefused).await;
    client.send(&ClientMsg::Sfu { signal: Signal::Answer { sdp: "v=0".into() } }).await;
    client.expect_error(ErrorCode::SfuRefused).await;
    client.send(&ClientMsg::Sfu { signal: Signal::Offer { sdp: "v".repeat(MAX_SDP_BYTES + 1) } }).await;
    client.expect_error(ErrorCode::TooLarge).await;
    // Candidates and layers without a connection are taken silently.
    let candidate = IceCandidate { candidate: "candidate:x".into(), sdp_mid: None, sdp_m_line_index: None };
    client.send(&ClientMsg::Sfu { signal: Signal::Candidate(candidate) }).await;
    client.send(&ClientMsg::SfuLayers { layers: vec![SfuLayer { peer: PeerId(999), layer: VideoLayer::Low }] }).await;
    client.expect_nothing_queued().await;

    // A real offer still works on the same socket afterwards.
    let mut bot = Bot::new(std::net::Ipv4Addr::LOCALHOST.into(), BotOptions::default()).unwrap();
    client.send(&ClientMsg::Sfu { signal: Signal::Offer { sdp: bot.offer() } }).await;
    match client.recv().await {
        ServerMsg::Sfu { signal: Signal::Answer { sdp }, tracks } => {
            assert!(tracks.is_empty());
            bot.accept_answer(&sdp, &[]).unwrap();
        }
        other => panic!("expected the SFU's answer, got {other:?}"),
    }
}
