//! The session loop over in-memory channels instead of a socket: what a browser would send
//! goes in one channel, what the server writes comes out of the other.

use super::*;
use crate::HubConfig;
use confab_protocol::ErrorCode;
use futures::channel::mpsc;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio_util::sync::CancellationToken;

/// One end of a socket made of two channels.
struct Pipe {
    incoming: mpsc::UnboundedReceiver<Result<Message, axum::Error>>,
    outgoing: mpsc::UnboundedSender<Message>,
}

impl Stream for Pipe {
    type Item = Result<Message, axum::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.incoming).poll_next(cx)
    }
}

impl Sink<Message> for Pipe {
    type Error = axum::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), axum::Error> {
        self.outgoing.unbounded_send(item).map_err(axum::Error::new)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        Poll::Ready(Ok(()))
    }
}

/// The browser's end: what it sends, and what the session wrote.
struct Browser {
    send: mpsc::UnboundedSender<Result<Message, axum::Error>>,
    written: mpsc::UnboundedReceiver<Message>,
}

impl Browser {
    fn say(&self, json: &str) {
        self.send.unbounded_send(Ok(Message::Text(json.into()))).unwrap();
    }

    /// The next frame the session wrote, heartbeat pings aside: the heartbeat's first ping is
    /// due as the session starts, so on a busy machine it comes before or between any answers.
    async fn next(&mut self) -> Message {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), self.written.next()).await;
            match next.expect("the session wrote something within 5 s").expect("the session is still writing") {
                Message::Ping(_) => continue,
                frame => return frame,
            }
        }
    }

    async fn next_msg(&mut self) -> ServerMsg {
        match self.next().await {
            Message::Text(text) => ServerMsg::from_json(text.as_str()).unwrap(),
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

fn start(hub: &Arc<Hub>) -> (Browser, tokio::task::JoinHandle<()>) {
    let (send, incoming) = mpsc::unbounded();
    let (outgoing, written) = mpsc::unbounded();
    let session = tokio::spawn(run(Pipe { incoming, outgoing }, hub.clone(), IpAddr::from([127, 0, 0, 1])));
    (Browser { send, written }, session)
}

fn hub(shutdown: &CancellationToken) -> Arc<Hub> {
    Arc::new(Hub::new(HubConfig { stun_urls: vec![], ..HubConfig::default() }, shutdown.clone()))
}

fn join(name: &str, secret: &str) -> String {
    format!(r#"{{"type":"join","room":"r","name":"{name}","secret":"{secret}"}}"#)
}

#[tokio::test]
async fn a_join_is_welcomed_a_mistake_is_answered_and_a_close_frame_leaves() {
    let shutdown = CancellationToken::new();
    let hub = hub(&shutdown);
    let (mut ada, ada_session) = start(&hub);
    ada.say(&join("Ada", "secret-of-ada-0123456789"));
    let ServerMsg::Welcome { peers, .. } = ada.next_msg().await else { panic!("no welcome") };
    assert!(peers.is_empty());
    ada.say(r#"{"type":"signal","to":99,"signal":{"kind":"offer","sdp":"v=0"}}"#);
    let ServerMsg::Error { code, .. } = ada.next_msg().await else { panic!("no error") };
    assert_eq!(code, ErrorCode::UnknownPeer);
    assert_eq!(hub.rooms.member_count(&RoomName::parse("r").unwrap()).await.unwrap(), 1);
    ada.send.unbounded_send(Ok(Message::Close(None))).unwrap();
    ada_session.await.unwrap();
    assert_eq!(hub.rooms.member_count(&RoomName::parse("r").unwrap()).await.unwrap(), 0, "left at once");
}

#[tokio::test]
async fn a_newer_socket_with_the_same_secret_closes_the_older_with_4000() {
    let shutdown = CancellationToken::new();
    let hub = hub(&shutdown);
    let (mut old, old_session) = start(&hub);
    old.say(&join("Ada", "secret-of-ada-0123456789"));
    let ServerMsg::Welcome { id, .. } = old.next_msg().await else { panic!("no welcome") };
    let (mut new, _new_session) = start(&hub);
    new.say(&join("Ada", "secret-of-ada-0123456789"));
    let ServerMsg::Welcome { id: resumed, resumed: true, .. } = new.next_msg().await else { panic!("no resume") };
    assert_eq!(resumed, id);
    match old.next().await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, close_code::REPLACED),
        other => panic!("expected a close frame, got {other:?}"),
    }
    old_session.await.unwrap();
    assert_eq!(hub.rooms.member_count(&RoomName::parse("r").unwrap()).await.unwrap(), 1, "the place stays");
}

#[tokio::test]
async fn shutdown_closes_with_going_away_and_announces_no_leave() {
    let shutdown = CancellationToken::new();
    let hub = hub(&shutdown);
    let (mut ada, ada_session) = start(&hub);
    ada.say(&join("Ada", "secret-of-ada-0123456789"));
    assert!(matches!(ada.next_msg().await, ServerMsg::Welcome { .. }));
    let (mut bob, bob_session) = start(&hub);
    bob.say(&join("Bob", "secret-of-bob-0123456789"));
    assert!(matches!(bob.next_msg().await, ServerMsg::Welcome { .. }));
    assert!(matches!(ada.next_msg().await, ServerMsg::PeerJoined { .. }));
    shutdown.cancel();
    for browser in [&mut ada, &mut bob] {
        match browser.next().await {
            Message::Close(Some(frame)) => assert_eq!(frame.code, close_code::GOING_AWAY),
            other => panic!("expected a close frame (no peer_left first), got {other:?}"),
        }
    }
    for session in [ada_session, bob_session] {
        tokio::time::timeout(Duration::from_secs(5), session).await.expect("the session ended").unwrap();
    }
    // The places stay for the browsers' return to the restarted server.
    assert_eq!(hub.rooms.member_count(&RoomName::parse("r").unwrap()).await.unwrap(), 2);
}
