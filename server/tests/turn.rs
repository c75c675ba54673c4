//! TURN credentials against real TURN servers: Debian's coturn (started here with
//! `use-auth-secret`, as a self-hoster would run it) and the embedded server. A TURN client
//! allocates a relay with credentials minted by the signaling server's code.

use confab_server::turn::{credentials, EmbeddedConfig, EmbeddedTurn};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};

const SECRET: &str = "a-secret-shared-with-the-turn-server";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Asks `server` for a relay allocation with `username`/`password`.
async fn allocate(server: SocketAddr, username: &str, password: &str) -> Result<SocketAddr, String> {
    let conn = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let client = Client::new(ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: username.into(),
        password: password.into(),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    client.listen().await.map_err(|e| e.to_string())?;
    let relay = tokio::time::timeout(Duration::from_secs(10), client.allocate()).await;
    let result = match relay {
        Ok(Ok(relay)) => webrtc_util::Conn::local_addr(&relay).map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer".into()),
    };
    let _ = client.close().await;
    result
}

/// A free UDP port on loopback (the TURN server binds it right after).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// coturn on loopback, stopped when dropped.
struct Coturn {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Coturn {
    async fn start() -> Coturn {
        let port = free_udp_port();
        let dir = std::env::temp_dir().join(format!("confab-coturn-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("turnserver")
            .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--no-tls", "--no-dtls", "--no-tcp"])
            .arg(format!("--listening-port={port}"))
            .args(["--min-port=50000", "--max-port=50999", "--use-auth-secret", "--realm=confab.test"])
            .arg(format!("--static-auth-secret={SECRET}"))
            .args(["--allow-loopback-peers", "--no-cli", "--log-file=stdout", "--simple-log"])
            .arg(format!("--pidfile={}", dir.join("turnserver.pid").display()))
            .arg(format!("--db={}", dir.join("turndb").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("coturn's turnserver must be installed (scripts/install-tools.sh test does it)");
        let coturn = Coturn { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), _dir: TempDir(dir) };
        // Ready once it answers: retry an allocation with good credentials for a while.
        let (username, password) = credentials(SECRET, now() + 60, "probe");
        for _ in 0..50 {
            if allocate(coturn.addr, &username, &password).await.is_ok() {
                return coturn;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("coturn did not start on {}", coturn.addr);
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fresh credentials allocate; expired ones and ones from another secret do not.
async fn check_credentials(server: SocketAddr) {
    let (username, password) = credentials(SECRET, now() + 600, "0123456789abcdef0123456789abcdef");
    let relay = allocate(server, &username, &password).await.expect("fresh credentials allocate");
    assert_eq!(relay.ip(), std::net::IpAddr::from([127, 0, 0, 1]));

    let (username, password) = credentials(SECRET, now() - 5, "0123456789abcdef0123456789abcdef");
    assert!(allocate(server, &username, &password).await.is_err(), "expired credentials are refused");

    let (username, password) = credentials("another-secret", now() + 600, "peer");
    assert!(allocate(server, &username, &password).await.is_err(), "another secret's credentials are refused");
}

#[tokio::test]
async fn coturn_accepts_minted_credentials_and_refuses_expired_ones() {
    let coturn = Coturn::start().await;
    check_credentials(coturn.addr).await;
}

#[tokio::test]
async fn the_embedded_server_accepts_minted_credentials_and_refuses_expired_ones() {
    let turn = EmbeddedTurn::start(EmbeddedConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        public_ip: [127, 0, 0, 1].into(),
        relay_ports: (51000, 51999),
        realm: "confab.test".into(),
        secret: SECRET.into(),
    })
    .await
    .unwrap();
    check_credentials(turn.local_addr()).await;
    turn.close().await;
}
