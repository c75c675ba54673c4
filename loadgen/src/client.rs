//! One simulated participant's signaling socket: connect, join, send and read protocol messages.

use anyhow::{bail, Context};
use confab_protocol::{ClientMsg, MediaState, PeerId, ServerMsg};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `url` with a read buffer of `read_buffer` bytes (tungstenite allocates
/// it up front: its default of 128 KiB would make the generator itself huge at 10,000
/// connections) and Nagle's algorithm off, as browsers have it.
pub async fn connect(url: &str, read_buffer: usize) -> anyhow::Result<Ws> {
    let config = WebSocketConfig::default().read_buffer_size(read_buffer);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ws)
}

/// A join secret unique to this process and participant `n` (the server derives the
/// participant's key from it; two sockets with one secret would take each other's place).
pub fn secret(n: usize) -> String {
    let secret = format!("loadgen-{}-{n:08}", std::process::id());
    debug_assert!(confab_protocol::valid_secret(&secret));
    secret
}

/// What a join tells a participant.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Its own id.
    pub id: PeerId,
    /// Those already in the room.
    pub peers: Vec<PeerId>,
}

/// Joins `room` as `name` with participant `n`'s secret and waits for the welcome.
pub async fn join(ws: &mut Ws, room: &str, name: &str, n: usize) -> anyhow::Result<Joined> {
    let join = ClientMsg::Join {
        room: room.into(),
        name: name.into(),
        secret: Some(secret(n)),
        password: None,
        listed: false,
        media: MediaState::default(),
    };
    send(ws, &join).await?;
    loop {
        match recv(ws).await? {
            ServerMsg::Welcome { id, peers, .. } => {
                return Ok(Joined { id, peers: peers.into_iter().map(|p| p.id).collect() });
            }
            ServerMsg::Error { code, message, .. } => bail!("join refused: {} ({message})", code.as_str()),
            _ => continue,
        }
    }
}

/// Sends one message (and flushes it, as a browser does).
pub async fn send(ws: &mut Ws, msg: &ClientMsg) -> anyhow::Result<()> {
    ws.send(Message::text(msg.to_json())).await.context("sending")
}

/// Reads up to the next protocol message; pings are answered by tungstenite on the way.
pub async fn recv(ws: &mut Ws) -> anyhow::Result<ServerMsg> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return ServerMsg::from_json(text.as_str()).context("decoding"),
            Some(Ok(Message::Close(frame))) => bail!("closed by the server: {}", close_kind(frame.as_ref())),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e).context("reading"),
            None => bail!("connection dropped"),
        }
    }
}

/// The error kind of a close frame: `close:<code>`.
pub fn close_kind(frame: Option<&tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("close:{}", u16::from(frame.code)),
        None => "close:none".into(),
    }
}
