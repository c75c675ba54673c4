//! The HTTP server itself over real sockets, as the binary serves: slow clients cut off by the
//! header-read timeout, the cap on connections that are not WebSockets, the security headers of
//! the pages (and HSTS only over HTTPS), and client addresses behind a trusted proxy.

use crate::common::*;
use confab_server::addr::TrustedProxies;
use leptos::config::LeptosOptions;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Options for a site without files: pages render all the same (their assets would be 404).
fn empty_site() -> LeptosOptions {
    let root = std::env::temp_dir().join("confab-http-tests-no-site");
    LeptosOptions::builder().output_name("confab").site_root(root.to_str().unwrap()).site_pkg_dir("pkg").build()
}

/// The whole app, as `main` builds it, on a hub of its own.
fn whole_app() -> axum::Router {
    let hub = Arc::new(Hub::new(HubConfig::default(), CancellationToken::new()));
    confab_server::app(hub, empty_site())
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 response (a `Content-Length` or chunked body, or one that ends with the
/// connection).
async fn read_reply<S: AsyncRead + Unpin>(stream: &mut S) -> Reply {
    tokio::time::timeout(PATIENCE, async {
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "connection closed in the headers");
            raw.push(byte[0]);
        }
        let head = String::from_utf8(raw).unwrap();
        let mut lines = head.trim_end().split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> =
            lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
        let reply = Reply { status, headers, body: String::new() };
        let mut body = Vec::new();
        if let Some(length) = reply.header("content-length") {
            body.resize(length.parse().unwrap(), 0);
            stream.read_exact(&mut body).await.unwrap();
        } else if reply.header("transfer-encoding") == Some("chunked") {
            loop {
                let mut line = Vec::new();
                while !line.ends_with(b"\r\n") {
                    stream.read_exact(&mut byte).await.unwrap();
                    line.push(byte[0]);
                }
                let size = usize::from_str_radix(std::str::from_utf8(&line).unwrap().trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                stream.read_exact(&mut chunk).await.unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            stream.read_to_end(&mut body).await.unwrap();
        }
        Reply { body: String::from_utf8(body).unwrap(), ..reply }
    })
    .await
    .expect("no complete response")
}

/// `GET path` on `stream`, keeping the connection open.
async fn get_on<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, path: &str) -> Reply {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: confab.test\r\n\r\n").as_bytes()).await.unwrap();
    read_reply(stream).await
}

/// `GET path` on a connection of its own.
async fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    read_reply(&mut stream).await
}

/// Waits (up to `PATIENCE`) until the server closes `stream`; whatever else it sends is skipped.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

#[tokio::test]
async fn a_slowloris_of_many_connections_does_not_stop_a_page_load() {
    const SLOW: usize = 256;
    const CAP: usize = 64;
    let config = ServeConfig {
        header_read_timeout: Duration::from_millis(1000),
        max_http_connections: CAP,
        ..ServeConfig::default()
    };
    let (addr, server) = serve(whole_app(), Server::new(config)).await;

    // Half of them send part of a request and then one more header line every 200 ms, for as
    // long as they are let; the other half connect and send nothing.
    let mut slow = Vec::new();
    for i in 0..SLOW {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            stream.write_all(b"GET / HTTP/1.1\r\nHost: confab.test\r\n").await.unwrap();
        }
        slow.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut buf = [0u8; 256];
            let mut n = 0;
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return true,
                        Ok(_) => {}
                    },
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        n += 1;
                        if i % 2 == 0 && stream.write_all(format!("X-Slow-{n}: {i}\r\n").as_bytes()).await.is_err() {
                            return true;
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => return false,
                }
            }
        }));
    }
    assert!(server.http_connections() <= CAP);

    // A browser's page load in the middle of it.
    let started = Instant::now();
    let page = get(addr, "/").await;
    let took = started.elapsed();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<html"), "not a page: {}", page.body);
    eprintln!("{SLOW} slow connections (cap {CAP}): the page loaded in {took:?}");

    // Every slow connection is closed, however slowly it keeps sending.
    let mut closed = 0;
    for task in slow {
        closed += usize::from(task.await.unwrap());
    }
    assert_eq!(closed, SLOW, "slow connections the server left open");
    wait_for("connections still counted", || server.http_connections() == 0).await;
}

#[tokio::test]
async fn a_tls_handshake_that_never_finishes_is_cut_off() {
    let config = ServeConfig { header_read_timeout: Duration::from_millis(500), ..ServeConfig::default() };
    let (addr, server) = serve(whole_app(), Server::new(config).with_tls(server_tls())).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    // The first bytes of a ClientHello record, and no more.
    partial.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
    assert!(closed_by_server(&mut silent).await);
    assert!(closed_by_server(&mut partial).await);
    wait_for("connections still counted", || server.http_connections() == 0).await;
}

#[tokio::test]
async fn connections_that_are_not_websockets_are_capped() {
    let hub = Arc::new(Hub::new(HubConfig::default(), CancellationToken::new()));
    let router = confab_server::signaling_routes(hub.clone()).route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "done"
        }),
    );
    let (addr, server) =
        serve(router, Server::new(ServeConfig { max_http_connections: 4, ..ServeConfig::default() })).await;

    // Upgraded connections leave the count: more WebSockets than the cap stay open.
    let mut sockets = Vec::new();
    for _ in 0..6 {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
        sockets.push(Client { ws });
    }
    wait_for("upgraded connections still counted", || server.http_connections() == 0).await;

    // Four kept-alive connections, idle after a request each, fill the places.
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        assert_eq!(get_on(&mut stream, "/healthz").await.body, "ok");
        idle.push(stream);
    }
    assert_eq!(server.http_connections(), 4);
    // A newcomer takes the place of the one idle longest; the others stay usable.
    assert_eq!(get(addr, "/healthz").await.status, 200);
    assert!(closed_by_server(&mut idle[0]).await, "the longest idle connection was kept");
    for stream in &mut idle[1..] {
        assert_eq!(get_on(stream, "/healthz").await.body, "ok");
    }
    assert!(server.http_connections() <= 4);
    drop(idle);
    wait_for("closed connections still counted", || server.http_connections() == 0).await;

    // Connections in the middle of a request are not taken over: a newcomer waits for a place.
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /slow HTTP/1.1\r\nHost: confab.test\r\n\r\n").await.unwrap();
        busy.push(stream);
    }
    wait_for("busy connections not counted", || server.http_connections() == 4).await;
    assert_eq!(get(addr, "/healthz").await.status, 200);
    for stream in &mut busy {
        assert_eq!(read_reply(stream).await.body, "done");
    }

    // The WebSockets were never touched.
    for (i, socket) in sockets.iter_mut().enumerate() {
        socket.join(&format!("room{i}"), "Ada").await;
    }
}

#[tokio::test]
async fn metrics_count_the_connections_that_are_not_websockets() {
    let hub = Arc::new(Hub::new(HubConfig::default(), CancellationToken::new()));
    let server = Server::new(ServeConfig::default());
    hub.attach_http(server.http_connections_gauge());
    let (addr, _) = serve(confab_server::signaling_routes(hub.clone()), server).await;
    let _socket = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        assert_eq!(get_on(&mut stream, "/healthz").await.body, "ok");
        idle.push(stream);
    }
    // The two idle ones and the scrape's own; the WebSocket counts apart.
    let metrics = get(addr, "/metrics").await.body;
    assert!(metrics.lines().any(|l| l == "confab_http_connections 3"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "confab_connections 1"), "{metrics}");
}

/// 64 MiB in 64 KiB chunks, as a file would stream.
async fn big() -> axum::body::Body {
    let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
    axum::body::Body::from_stream(futures::stream::iter((0..1024).map(move |_| Ok::<_, std::io::Error>(chunk.clone()))))
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_one_that_reads_slowly_is_not() {
    let router = axum::Router::new().route("/big", axum::routing::get(big));
    let config = ServeConfig { idle_timeout: Duration::from_millis(500), ..ServeConfig::default() };
    let (addr, server) = serve(router, Server::new(config)).await;

    // Reads 64 KiB every 100 ms for 2 s: four idle timeouts, and the response moves all along.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /big HTTP/1.1\r\nHost: confab.test\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = tokio::time::timeout(PATIENCE, slow.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "a slow reader was dropped");
    }

    drop(slow);
    wait_for("a closed connection still counted", || server.http_connections() == 0).await;

    // Stops reading after the first byte: once the socket buffers are full the response stops,
    // and the connection is dropped.
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    stuck.write_all(b"GET /big HTTP/1.1\r\nHost: confab.test\r\n\r\n").await.unwrap();
    tokio::time::timeout(PATIENCE, stuck.read_exact(&mut buf[..1])).await.unwrap().unwrap();
    assert_eq!(server.http_connections(), 1);
    wait_for("a client that stopped reading still connected", || server.http_connections() == 0).await;
}

/// Every `<script` tag of `html` (as written by the server).
fn script_tags(html: &str) -> Vec<&str> {
    html.match_indices("<script").map(|(at, _)| &html[at..at + html[at..].find('>').unwrap()]).collect()
}

fn nonce_of(csp: &str) -> &str {
    let start = csp.find("'nonce-").expect("a nonce in the CSP") + "'nonce-".len();
    &csp[start..start + csp[start..].find('\'').unwrap()]
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_their_scripts_the_nonce() {
    let (addr, _) = serve(whole_app(), Server::new(ServeConfig::default())).await;
    let mut nonces = Vec::new();
    for path in ["/", "/room/x", "/no/such/page"] {
        let page = get(addr, path).await;
        assert_eq!(page.status, if path == "/no/such/page" { 404 } else { 200 }, "{path}");
        let csp = page.header("content-security-policy").unwrap_or_else(|| panic!("no CSP on {path}"));
        for directive in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "connect-src 'self'",
            "'wasm-unsafe-eval'",
        ] {
            assert!(csp.contains(directive), "{path}: {directive} missing from {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"), "{csp}");
        let nonce = nonce_of(csp);
        assert!(nonce.len() >= 22, "{nonce}");
        let scripts = script_tags(&page.body);
        assert!(!scripts.is_empty(), "{path}: no hydration script");
        for tag in scripts {
            assert!(tag.contains(&format!("nonce=\"{nonce}\"")), "{path}: {tag} lacks the nonce {nonce}");
        }
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        let permissions = page.header("permissions-policy").unwrap_or_default();
        for feature in ["camera=(self)", "microphone=(self)", "display-capture=(self)"] {
            assert!(permissions.contains(feature), "{path}: {permissions}");
        }
        assert_eq!(page.header("strict-transport-security"), None, "HSTS over plain HTTP");
        nonces.push(nonce.to_owned());
    }
    nonces.dedup();
    assert_eq!(nonces.len(), 3, "a nonce per response");

    // Other responses are not pages, but are not sniffed or referred either.
    let health = get(addr, "/healthz").await;
    assert_eq!(health.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(health.header("referrer-policy"), Some("no-referrer"));
}

#[tokio::test]
async fn over_https_pages_also_carry_hsts() {
    let (addr, _) = serve(whole_app(), Server::new(ServeConfig::default()).with_tls(server_tls())).await;
    let mut tls = tls_connect(addr).await;
    let page = get_on(&mut tls, "/room/x").await;
    assert_eq!(page.status, 200);
    assert!(page.header("strict-transport-security").is_some_and(|v| v.starts_with("max-age=")));
    let nonce = nonce_of(page.header("content-security-policy").unwrap()).to_owned();
    assert!(script_tags(&page.body).iter().all(|tag| tag.contains(&format!("nonce=\"{nonce}\""))));
}

#[tokio::test]
async fn https_is_served_by_the_same_loop() {
    let (addr, server) = serve(whole_app(), Server::new(ServeConfig::default()).with_tls(server_tls())).await;
    let mut tls = tls_connect(addr).await;
    assert_eq!(get_on(&mut tls, "/healthz").await.body, "ok");
    // Kept alive for the next request, and counted until closed.
    assert_eq!(get_on(&mut tls, "/readyz").await.body, "ready");
    assert_eq!(server.http_connections(), 1);
    drop(tls);
    wait_for("a closed connection still counted", || server.http_connections() == 0).await;
}

/// A certificate for 127.0.0.1, generated once per test binary, and the server configuration.
fn server_tls() -> Arc<rustls::ServerConfig> {
    let (cert, key) = test_certificate();
    confab_server::tls::server_config(cert.as_bytes(), key.as_bytes()).unwrap()
}

fn test_certificate() -> &'static (String, String) {
    static CERT: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    CERT.get_or_init(|| confab_server::tls::self_signed(&[]).unwrap())
}

/// A TLS connection (HTTP/1.1 by ALPN) that trusts [`test_certificate`].
async fn tls_connect(addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(test_certificate().0.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// Opens a WebSocket whose request says it was forwarded for `forwarded_for`; the HTTP status
/// if refused.
async fn connect_via_proxy(server: &TestServer, header: &str, forwarded_for: &str) -> Result<Client, u16> {
    let mut request = format!("ws://{}/ws", server.addr).into_client_request().unwrap();
    request.headers_mut().insert(
        tungstenite::http::HeaderName::from_bytes(header.as_bytes()).unwrap(),
        HeaderValue::from_str(forwarded_for).unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("unexpected handshake failure: {e}"),
    }
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    // Nobody trusted: whatever the header says, everyone here is 127.0.0.1.
    let server = TestServer::with(HubConfig { max_connections_per_ip: 1, ..HubConfig::default() }).await;
    let _first = connect_via_proxy(&server, "x-forwarded-for", "203.0.113.1").await.unwrap();
    assert_eq!(connect_via_proxy(&server, "x-forwarded-for", "203.0.113.2").await.err(), Some(429));
    assert_eq!(connect_via_proxy(&server, "forwarded", "for=203.0.113.3").await.err(), Some(429));

    // Loopback is the proxy: each forwarded client is counted apart.
    let server = TestServer::with(HubConfig {
        max_connections_per_ip: 1,
        trusted_proxies: TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()]),
        ..HubConfig::default()
    })
    .await;
    let _a = connect_via_proxy(&server, "x-forwarded-for", "203.0.113.1").await.unwrap();
    // A client that writes its own header gets its forgery passed on to the left of its address.
    let _b = connect_via_proxy(&server, "x-forwarded-for", "203.0.113.1, 203.0.113.2").await.unwrap();
    assert_eq!(connect_via_proxy(&server, "x-forwarded-for", "198.51.100.9, 203.0.113.2").await.err(), Some(429));
    assert_eq!(connect_via_proxy(&server, "x-forwarded-for", "203.0.113.1").await.err(), Some(429));
    let _c = connect_via_proxy(&server, "forwarded", "for=192.0.2.60;proto=https").await.unwrap();
    assert_eq!(connect_via_proxy(&server, "forwarded", r#"for="192.0.2.60:4711""#).await.err(), Some(429));
    // IPv6 clients count by their /64.
    let _d = connect_via_proxy(&server, "x-forwarded-for", "2001:db8:1:2::1").await.unwrap();
    assert_eq!(connect_via_proxy(&server, "x-forwarded-for", "2001:db8:1:2:ffff::9").await.err(), Some(429));
    let _e = connect_via_proxy(&server, "x-forwarded-for", "2001:db8:1:3::1").await.unwrap();
    // Without a header the proxy itself is the client.
    let _proxy = server.connect().await;
    assert!(tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr)).await.is_err());
}
