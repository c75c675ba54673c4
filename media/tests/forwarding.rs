//! The engine over real UDP on loopback, with bots as participants: each is a full str0m WebRTC
//! endpoint (ICE, DTLS-SRTP) on its own socket, signaling through the engine's handle as the
//! server's sessions do.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use confab_media::bot::{Bot, BotOptions, BotReport};
use confab_media::{Layer, MediaConfig, MediaError, MediaHandle, MediaStats, Member, Notice, ParticipantId, TrackKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A bot joined to the engine, run in its own task; its report is published every 20 ms and
/// every offer it got is kept.
struct Participant {
    id: ParticipantId,
    member: Member,
    report: watch::Receiver<BotReport>,
    offers: watch::Receiver<Vec<Vec<(String, ParticipantId, TrackKind)>>>,
    /// The tracks the join's answer put on its offer's receive-only lines.
    answered: Vec<(String, ParticipantId, TrackKind)>,
    /// Every active speaker the engine named to it, in order.
    speakers: watch::Receiver<Vec<Option<ParticipantId>>>,
    task: JoinHandle<()>,
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn join(sfu: &MediaHandle, room: &str, id: u64, options: BotOptions) -> Participant {
    let id = ParticipantId(id);
    let (notices_tx, mut notices) = mpsc::channel(64);
    let mut bot = Bot::new(LOOPBACK.into(), options).expect("a bot socket");
    let member = Member { room: confab_media::RoomId::new(room), id };
    let answer = sfu.join(member.clone(), bot.offer(), notices_tx).await.expect("joined");
    bot.accept_answer(&answer.sdp, &answer.tracks).expect("the answer is accepted");
    let answered = answer.tracks.iter().map(|t| (t.mid.clone(), t.source, t.kind)).collect();
    let (report_tx, report) = watch::channel(BotReport::default());
    let (offers_tx, offers) = watch::channel(Vec::new());
    let (speakers_tx, speakers) = watch::channel(Vec::new());
    let sfu = sfu.clone();
    let me = member.clone();
    let task = tokio::spawn(async move {
        loop {
            while let Ok(notice) = notices.try_recv() {
                match notice {
                    Notice::Offer { sdp, tracks } => {
                        let answer = bot.accept_offer(&sdp, &tracks).expect("an offer we take");
                        sfu.answer(me.clone(), answer).await.expect("the answer is accepted");
                        offers_tx.send_modify(|o| {
                            o.push(tracks.iter().map(|t| (t.mid.clone(), t.source, t.kind)).collect())
                        });
                    }
                    Notice::Closed { .. } => return,
                    Notice::ActiveSpeaker { id } => speakers_tx.send_modify(|s| s.push(id)),
                    Notice::Connected | Notice::Disconnected => {}
                }
            }
            bot.run_for(Duration::from_millis(20)).await.expect("the bot runs");
            report_tx.send_replace(bot.report().clone());
        }
    });
    Participant { id, member, report, offers, answered, speakers, task }
}

/// Waits until `done` holds for the participant's report, or fails after `limit`.
async fn until(p: &mut Participant, limit: Duration, what: &str, done: impl Fn(&BotReport) -> bool) {
    let seen = tokio::time::timeout(limit, p.report.wait_for(|r| done(r))).await.is_ok_and(|r| r.is_ok());
    assert!(seen, "participant {} never saw {what}: {:#?}", p.id.0, *p.report.borrow());
}

/// Waits until the engine last named `speaker` as the active speaker to `p`.
async fn until_speaker(p: &mut Participant, speaker: Option<ParticipantId>) {
    let named = tokio::time::timeout(Duration::from_secs(5), p.speakers.wait_for(|s| s.last() == Some(&speaker)))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(named, "participant {} was never told {speaker:?} speaks: {:?}", p.id.0, *p.speakers.borrow());
}

fn frames_from(r: &BotReport, source: &Participant) -> (u64, u64) {
    r.sources.get(&source.id).map_or((0, 0), |s| (s.video_frames, s.audio_packets))
}

fn engine() -> MediaHandle {
    confab_media::spawn(MediaConfig::default()).expect("the engine binds")
}

#[tokio::test]
async fn two_participants_see_and_hear_each_other() {
    let sfu = engine();
    let mut a = join(&sfu, "stand-up", 1, BotOptions::default()).await;
    let mut b = join(&sfu, "stand-up", 2, BotOptions::default()).await;
    let limit = Duration::from_secs(10);
    until(&mut a, limit, "b's media", |r| {
        r.sources.get(&ParticipantId(2)).is_some_and(|s| s.video_frames >= 30 && s.audio_packets >= 50)
    })
    .await;
    until(&mut b, limit, "a's media", |r| {
        r.sources.get(&ParticipantId(1)).is_some_and(|s| s.video_frames >= 30 && s.audio_packets >= 50)
    })
    .await;
    let report = b.report.borrow().clone();
    assert_eq!(report.unknown_media, 0);
    let from_a = &report.sources[&ParticipantId(1)];
    assert!(from_a.keyframes >= 1, "the first frame forwarded is a keyframe");
    assert_eq!(from_a.last_layer, Some(Layer::High));
    // Each got one offer with the other's audio and video.
    let offers = a.offers.borrow().clone();
    let last = offers.last().expect("an offer");
    let mut kinds: Vec<_> = last.iter().map(|(_, s, k)| (*s, *k)).collect();
    kinds.sort_by_key(|(s, k)| (s.0, *k == TrackKind::Video));
    assert_eq!(kinds, [(b.id, TrackKind::Audio), (b.id, TrackKind::Video)]);
    assert!(MediaStats::get(&sfu.stats().forwarded) > 100);
    // Every packet forwarded was timed from its read to its last copy sent.
    let forwarding = sfu.stats().forwarding.lock().unwrap().clone();
    assert!(forwarding.count > 100, "{forwarding:?}");
    assert!(forwarding.max_us < 1_000_000, "{forwarding:?}");
}

#[tokio::test]
async fn a_joiner_s_receive_only_lines_carry_the_others_from_its_answer_on() {
    let sfu = engine();
    let mut a = join(&sfu, "r", 1, BotOptions::default()).await;
    let mut b = join(&sfu, "r", 2, BotOptions::default()).await;
    let from = |r: &BotReport, id: &ParticipantId| {
        r.sources.get(id).is_some_and(|s| s.video_frames >= 30 && s.audio_packets >= 50)
    };
    let limit = Duration::from_secs(10);
    // The engine knows a participant's tracks once its connection is up, as in a call under way.
    until(&mut a, limit, "b's media", |r| from(r, &b.id)).await;
    until(&mut b, limit, "a's media", |r| from(r, &a.id)).await;
    // Lines for one more than there are: the spare pair stays empty.
    let mut c = join(&sfu, "r", 3, BotOptions { receive_from: 3, ..BotOptions::default() }).await;
    let mut kinds: Vec<_> = c.answered.iter().map(|(_, s, k)| (s.0, *k == TrackKind::Video)).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, [(1, false), (1, true), (2, false), (2, true)]);
    until(&mut c, limit, "a's and b's media", |r| from(r, &a.id) && from(r, &b.id)).await;
    assert!(c.offers.borrow().is_empty(), "no offer of the SFU's was waited for");
    assert_eq!(c.report.borrow().unknown_media, 0);
    // Lines for one of three: the answer fills them, an offer brings the rest.
    until(&mut a, limit, "c's media", |r| from(r, &c.id)).await;
    let mut d = join(&sfu, "r", 4, BotOptions { receive_from: 1, ..BotOptions::default() }).await;
    let mut kinds: Vec<_> = d.answered.iter().map(|(_, _, k)| *k == TrackKind::Video).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, [false, true]);
    assert_eq!(d.answered[0].1, d.answered[1].1, "an audio and a video line carry one person");
    until(&mut d, limit, "everyone's media", |r| from(r, &a.id) && from(r, &b.id) && from(r, &c.id)).await;
    let offered: Vec<_> = d.offers.borrow().last().expect("an offer for the rest").clone();
    assert_eq!(offered.len(), 6, "{offered:?}");
    // The others get the joiners' tracks by offer, as before.
    until(&mut a, limit, "c's and d's media", |r| from(r, &c.id) && from(r, &d.id)).await;
}

#[tokio::test]
async fn media_never_crosses_rooms() {
    let sfu = engine();
    let mut a = join(&sfu, "room-1", 1, BotOptions::default()).await;
    let b = join(&sfu, "room-1", 2, BotOptions::default()).await;
    // Ids are per room: room-2 has its own participant 1.
    let c = join(&sfu, "room-2", 1, BotOptions::default()).await;
    until(&mut a, Duration::from_secs(10), "b's video", |r| frames_from(r, &b).0 >= 30).await;
    let c_report = c.report.borrow().clone();
    assert!(c_report.connected, "c is connected: {c_report:#?}");
    assert!(c_report.sources.is_empty(), "c got media from another room: {c_report:#?}");
    assert!(c.offers.borrow().is_empty(), "c was offered another room's tracks");
    assert!(!a.report.borrow().sources.contains_key(&c.id), "a got its own id's media from room-2");
}

#[tokio::test]
async fn a_viewer_gets_the_layer_it_asks_for() {
    let sfu = engine();
    let publisher =
        join(&sfu, "class", 1, BotOptions { simulcast: true, frame_bytes: 3_000, ..BotOptions::default() }).await;
    let mut viewer = join(&sfu, "class", 2, BotOptions::default()).await;
    let layer_is =
        |layer| move |r: &BotReport| r.sources.get(&ParticipantId(1)).and_then(|s| s.last_layer) == Some(layer);
    until(&mut viewer, Duration::from_secs(10), "the full layer", layer_is(Layer::High)).await;

    sfu.set_layers(viewer.member.clone(), vec![(publisher.id, Layer::Low)]).await.unwrap();
    let asked = Instant::now();
    until(&mut viewer, Duration::from_secs(2), "the low layer", layer_is(Layer::Low)).await;
    eprintln!("switch to the low layer took {:?}", asked.elapsed());

    sfu.set_layers(viewer.member.clone(), vec![(publisher.id, Layer::Medium)]).await.unwrap();
    until(&mut viewer, Duration::from_secs(2), "the medium layer", layer_is(Layer::Medium)).await;

    // Off: video stops, audio goes on.
    sfu.set_layers(viewer.member.clone(), vec![(publisher.id, Layer::Off)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (video, audio) = frames_from(&viewer.report.borrow(), &publisher);
    until(&mut viewer, Duration::from_secs(5), "more audio", |r| frames_from(r, &publisher).1 >= audio + 50).await;
    let (video_after, _) = frames_from(&viewer.report.borrow(), &publisher);
    assert_eq!(video_after, video, "video went on while the tile was off");

    sfu.set_layers(viewer.member.clone(), vec![(publisher.id, Layer::High)]).await.unwrap();
    until(&mut viewer, Duration::from_secs(2), "video again", move |r| frames_from(r, &publisher).0 > video + 10).await;
}

#[tokio::test]
async fn a_slow_downlink_gets_a_lower_layer_and_a_fast_one_keeps_the_full_one() {
    let sfu = confab_media::spawn(MediaConfig { bwe: true, ..MediaConfig::default() }).expect("the engine binds");
    // The full layer is about 720 kbit/s, the half one 240.
    let publisher =
        join(&sfu, "class", 1, BotOptions { simulcast: true, frame_bytes: 3_000, ..BotOptions::default() }).await;
    // The viewers' own cameras are small (about 50 kbit/s): the slow link is the publisher's.
    let small = BotOptions { frame_bytes: 200, ..BotOptions::default() };
    let mut fast = join(&sfu, "class", 2, small).await;
    let slow = join(&sfu, "class", 3, BotOptions { downlink_bps: Some(450_000), ..small }).await;
    let by_layer = |r: &BotReport| r.sources.get(&publisher.id).map_or([0; 3], |s| s.frames_by_layer);
    until(&mut fast, Duration::from_secs(10), "the full layer", |r| by_layer(r)[2] > 0).await;
    // Settled (the estimates found the links), then counted for 5 s: the estimates of a busy
    // machine wobble, so what counts is where most frames went.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (fast_before, slow_before) = (by_layer(&fast.report.borrow()), by_layer(&slow.report.borrow()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let since = |now: [u64; 3], before: [u64; 3]| [now[0] - before[0], now[1] - before[1], now[2] - before[2]];
    let fast_frames = since(by_layer(&fast.report.borrow()), fast_before);
    let slow_frames = since(by_layer(&slow.report.borrow()), slow_before);
    eprintln!(
        "frames of the low, medium and full layers in 5 s: fast viewer {fast_frames:?}, slow viewer {slow_frames:?} \
         ({} datagrams dropped by its link)",
        slow.report.borrow().downlink_dropped
    );
    // The slow viewer gets lower layers, and a picture that moves (not a frozen one).
    let slow_total: u64 = slow_frames.iter().sum();
    assert!(slow_total >= 40, "the slow viewer's video stalled: {slow_frames:?}");
    assert!(slow_frames[2] * 4 < slow_total, "the slow viewer got mostly the full layer: {slow_frames:?}");
    // The fast viewer, same publisher, mostly the full layer.
    let fast_total: u64 = fast_frames.iter().sum();
    assert!(fast_frames[2] * 2 > fast_total, "the fast viewer was held down: {fast_frames:?}");
}

#[tokio::test]
async fn a_leaver_s_tracks_are_withdrawn() {
    let sfu = engine();
    let mut a = join(&sfu, "r", 1, BotOptions::default()).await;
    let b = join(&sfu, "r", 2, BotOptions::default()).await;
    until(&mut a, Duration::from_secs(10), "b's video", |r| frames_from(r, &b).0 >= 10).await;
    let offers_before = a.offers.borrow().len();
    sfu.leave(b.member.clone()).await;
    let withdrawn = tokio::time::timeout(
        Duration::from_secs(5),
        a.offers.wait_for(|o| o.len() > offers_before && o.last().is_some_and(|t| t.is_empty())),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    assert!(withdrawn, "no offer without b's tracks: {:?}", *a.offers.borrow());
    assert_eq!(MediaStats::get(&sfu.stats().participants), 1);
}

#[tokio::test]
async fn every_call_has_a_defined_answer() {
    let sfu = confab_media::spawn(MediaConfig { max_participants: 2, ..MediaConfig::default() }).unwrap();
    let (tx, _rx) = mpsc::channel(8);
    let nobody = Member::new("r", 99);
    assert!(matches!(sfu.join(Member::new("r", 1), "not sdp".into(), tx.clone()).await, Err(MediaError::BadSdp(_))));
    assert_eq!(sfu.answer(nobody.clone(), "v=0".into()).await, Err(MediaError::UnknownParticipant));
    assert_eq!(sfu.offer(nobody.clone(), "v=0".into()).await, Err(MediaError::UnknownParticipant));
    assert_eq!(sfu.candidate(nobody.clone(), "candidate:1".into()).await, Err(MediaError::UnknownParticipant));
    assert_eq!(sfu.set_layers(nobody, vec![]).await, Err(MediaError::UnknownParticipant));

    let mut bot = Bot::new(LOOPBACK.into(), BotOptions::default()).unwrap();
    let offer = bot.offer();
    sfu.join(Member::new("r", 1), offer.clone(), tx.clone()).await.unwrap();
    assert_eq!(sfu.join(Member::new("r", 1), offer.clone(), tx.clone()).await, Err(MediaError::AlreadyJoined));
    // An answer when the engine has no offer outstanding.
    assert!(matches!(
        sfu.answer(Member::new("r", 1), offer.replace("a=sendonly", "a=recvonly")).await,
        Err(MediaError::Negotiation(_)) | Err(MediaError::BadSdp(_))
    ));
    assert!(matches!(
        sfu.candidate(Member::new("r", 1), "candidate:garbage".into()).await,
        Err(MediaError::BadCandidate(_))
    ));
    assert_eq!(
        sfu.candidate(Member::new("r", 1), "candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host".into()).await,
        Ok(())
    );
    let mut other = Bot::new(LOOPBACK.into(), BotOptions::default()).unwrap();
    sfu.join(Member::new("r", 2), other.offer(), tx.clone()).await.unwrap();
    let mut third = Bot::new(LOOPBACK.into(), BotOptions::default()).unwrap();
    assert_eq!(sfu.join(Member::new("r", 3), third.offer(), tx).await, Err(MediaError::Full));
}

#[tokio::test]
async fn stray_datagrams_are_counted_and_change_nothing() {
    let sfu = engine();
    let mut a = join(&sfu, "r", 1, BotOptions::default()).await;
    let b = join(&sfu, "r", 2, BotOptions::default()).await;
    until(&mut a, Duration::from_secs(10), "b's video", |r| frames_from(r, &b).0 >= 10).await;

    let stray = UdpSocket::bind((LOOPBACK, 0)).unwrap();
    let to = sfu.local_addr();
    let garbage_before = MediaStats::get(&sfu.stats().garbage);
    let unowned_before = MediaStats::get(&sfu.stats().unowned);
    // Not WebRTC at all: empty, TURN channel data, and bytes no protocol starts with.
    for datagram in [&[][..], &[0x40, 0, 0, 4, 1, 2, 3, 4], &[0xff; 100], &[0x10; 3]] {
        stray.send_to(datagram, to).unwrap();
    }
    // WebRTC-shaped but nobody's: a STUN binding request with unknown credentials, DTLS and RTP
    // from an address no connection knows.
    let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[7; 12]);
    let mut rtp = vec![0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
    rtp.extend_from_slice(&[0; 100]);
    for datagram in [&stun[..], &[22, 0xfe, 0xfd, 0, 0][..], &rtp[..]] {
        stray.send_to(datagram, to).unwrap();
    }
    let counted = || MediaStats::get(&sfu.stats().garbage) + MediaStats::get(&sfu.stats().unowned);
    let deadline = Instant::now() + Duration::from_secs(5);
    while counted() < garbage_before + unowned_before + 7 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The four non-WebRTC ones are garbage; the STUN request is garbage or unowned depending on
    // whether a bare header parses; the DTLS and RTP ones are unowned.
    assert_eq!(counted(), garbage_before + unowned_before + 7);
    assert!(MediaStats::get(&sfu.stats().garbage) >= garbage_before + 4);
    assert!(MediaStats::get(&sfu.stats().unowned) >= unowned_before + 2);
    // The call goes on.
    let (video, _) = frames_from(&a.report.borrow(), &b);
    until(&mut a, Duration::from_secs(5), "more of b's video", |r| frames_from(r, &b).0 > video + 10).await;
    assert_eq!(MediaStats::get(&sfu.stats().participants), 2);
}

#[tokio::test]
async fn the_loudest_participant_is_named_the_active_speaker_in_its_room_only() {
    let sfu = engine();
    let silent = BotOptions { audio_level: -127, ..BotOptions::default() };
    let mut ada = join(&sfu, "stand-up", 1, BotOptions { audio_level: -20, ..BotOptions::default() }).await;
    let mut bob = join(&sfu, "stand-up", 2, silent).await;
    let mut cat = join(&sfu, "stand-up", 3, silent).await;
    // Another room, louder still: its speaker is never named in the stand-up.
    let mut eve = join(&sfu, "other", 9, BotOptions { audio_level: -5, ..BotOptions::default() }).await;
    for p in [&mut ada, &mut bob, &mut cat] {
        until_speaker(p, Some(ParticipantId(1))).await;
    }
    until_speaker(&mut eve, Some(ParticipantId(9))).await;
    // Someone who joins a room with a speaker is told at once.
    let mut dan = join(&sfu, "stand-up", 4, silent).await;
    until_speaker(&mut dan, Some(ParticipantId(1))).await;
    assert_eq!(dan.speakers.borrow().first(), Some(&Some(ParticipantId(1))), "told at join");
    // The speaker leaves: nobody speaks.
    sfu.leave(ada.member.clone()).await;
    for p in [&mut bob, &mut cat, &mut dan] {
        until_speaker(p, None).await;
    }
    for p in [&bob, &cat, &dan] {
        assert!(
            !p.speakers.borrow().contains(&Some(ParticipantId(9))),
            "another room's speaker: {:?}",
            p.speakers.borrow()
        );
    }
    drop(eve);
}
