//! The compiled assets over a real socket: precompressed `.br`/`.gz` chosen by `Accept-Encoding`,
//! the plain file otherwise, cache headers by kind (hashed, unhashed, page), and the hash file
//! Leptos is pointed at. The site is a small fake one in a temporary folder, so these tests do
//! not need `cargo leptos build`.

use confab_server::assets::{self, IMMUTABLE, PAGE, REVALIDATE, SHORT};
use confab_server::serve::{ServeConfig, Server};
use confab_server::{app, Hub, HubConfig};
use leptos::config::LeptosOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const HASH: &str = "AbCdEfGhIjKlMnOpQrStUv";

/// A temporary site root, removed on drop.
struct Site(PathBuf);

impl Site {
    fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!("confab-assets-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        Site(root)
    }

    fn write(&self, path: &str, bytes: &[u8]) {
        std::fs::write(self.0.join(path), bytes).unwrap();
    }

    fn options(&self) -> LeptosOptions {
        LeptosOptions::builder().output_name("confab").site_root(self.0.to_str().unwrap()).site_pkg_dir("pkg").build()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A site with a hashed wasm and its (stand-in) precompressed copies, an unhashed stylesheet
/// without any, and a favicon.
fn fake_site(name: &str) -> Site {
    let site = Site::new(name);
    site.write(&format!("pkg/confab.{HASH}.wasm"), &wasm_bytes());
    // The server sends these as they are: their bytes only need to be told apart.
    site.write(&format!("pkg/confab.{HASH}.wasm.br"), b"brotli bytes of the wasm");
    site.write(&format!("pkg/confab.{HASH}.wasm.gz"), b"gzip bytes of the wasm");
    site.write("pkg/confab.css", "body { color: black; }\n".repeat(40).as_bytes());
    site.write("favicon.svg", b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
    site
}

/// [`fake_site`] plus the hashed script and stylesheet and the `hash.txt` naming all three, as
/// a release build leaves them.
fn hashed_site(name: &str) -> Site {
    let site = fake_site(name);
    site.write(&format!("pkg/confab.{HASH}.js"), b"export default function () {}");
    site.write(&format!("pkg/confab.{HASH}.css"), b"body {}");
    site.write("hash.txt", format!("js: {HASH}\nwasm: {HASH}\ncss: {HASH}\n").as_bytes());
    site
}

fn wasm_bytes() -> Vec<u8> {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.extend((0..4000u32).map(|i| (i % 251) as u8));
    bytes
}

async fn serve(options: LeptosOptions) -> SocketAddr {
    let hub = Arc::new(Hub::new(HubConfig::default(), CancellationToken::new()));
    let listener = confab_server::serve::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(ServeConfig::default());
    tokio::spawn(async move { server.run(listener, app(hub, options), CancellationToken::new()).await });
    addr
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
}

/// `GET path` over HTTP/1.1 with `Connection: close`, read to the end; the body is returned as
/// sent (no content decoding; chunked bodies are left chunked).
async fn get(addr: SocketAddr, path: &str, accept_encoding: Option<&str>) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let encoding = accept_encoding.map(|e| format!("Accept-Encoding: {e}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{encoding}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no end of headers");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
    Reply { status, headers, body: raw[split + 4..].to_vec() }
}

fn varies_by_encoding(reply: &Reply) -> bool {
    reply.all("vary").iter().flat_map(|v| v.split(',')).any(|v| v.trim().eq_ignore_ascii_case("accept-encoding"))
}

#[tokio::test]
async fn hashed_wasm_goes_out_precompressed_and_immutable() {
    let site = fake_site("precompressed");
    let addr = serve(site.options()).await;
    let path = format!("/pkg/confab.{HASH}.wasm");

    let br = get(addr, &path, Some("gzip, deflate, br")).await;
    assert_eq!(br.status, 200);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(br.body, b"brotli bytes of the wasm");
    assert_eq!(br.header("content-type"), Some("application/wasm"));
    assert_eq!(br.header("cache-control"), Some(IMMUTABLE));
    assert!(varies_by_encoding(&br), "Vary: {:?}", br.all("vary"));
    assert_eq!(br.all("vary").len(), 1, "one Vary header, not one per layer");

    let gzip = get(addr, &path, Some("gzip")).await;
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert_eq!(gzip.body, b"gzip bytes of the wasm");
    assert_eq!(gzip.header("cache-control"), Some(IMMUTABLE));
    assert!(varies_by_encoding(&gzip));

    let plain = get(addr, &path, None).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, wasm_bytes());
    assert_eq!(plain.header("cache-control"), Some(IMMUTABLE));
    assert!(varies_by_encoding(&plain));

    let identity = get(addr, &path, Some("identity")).await;
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(identity.body, wasm_bytes());
}

#[tokio::test]
async fn without_precompressed_files_the_plain_file_is_compressed_on_the_fly() {
    let site = fake_site("on-the-fly");
    let addr = serve(site.options()).await;

    let plain = get(addr, "/pkg/confab.css", None).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, "body { color: black; }\n".repeat(40).as_bytes());
    // Unhashed: stored, but revalidated before every use.
    assert_eq!(plain.header("cache-control"), Some(REVALIDATE));
    assert!(varies_by_encoding(&plain));

    let br = get(addr, "/pkg/confab.css", Some("br")).await;
    assert_eq!(br.status, 200);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(br.header("cache-control"), Some(REVALIDATE));
    assert_eq!(br.all("vary").len(), 1);

    let missing = get(addr, &format!("/pkg/confab.{HASH}.js"), Some("br")).await;
    assert_eq!(missing.status, 404);
    assert_ne!(missing.header("cache-control"), Some(IMMUTABLE));
}

#[tokio::test]
async fn pages_and_other_files_get_short_or_no_caching() {
    let site = fake_site("pages");
    let addr = serve(site.options()).await;

    let page = get(addr, "/", Some("gzip, br")).await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(page.header("cache-control"), Some(PAGE));
    // Pages are still compressed, on the fly.
    assert_eq!(page.header("content-encoding"), Some("br"));

    let room = get(addr, "/room/standup", None).await;
    assert_eq!(room.status, 200);
    assert_eq!(room.header("cache-control"), Some(PAGE));
    let html = String::from_utf8_lossy(&room.body);
    assert!(html.contains("/pkg/confab.css"), "the stylesheet is linked: {html}");

    let favicon = get(addr, "/favicon.svg", None).await;
    assert_eq!(favicon.status, 200);
    assert_eq!(favicon.header("cache-control"), Some(SHORT));

    // Handlers that say how they may be cached keep their say; others get nothing added.
    let rooms = get(addr, "/api/rooms", None).await;
    assert_eq!(rooms.header("cache-control"), Some("no-store"));
    let health = get(addr, "/healthz", None).await;
    assert_eq!(health.header("cache-control"), None);
}

#[tokio::test]
async fn pages_name_the_hashed_files_when_a_matching_hash_file_exists() {
    let site = hashed_site("hash-file");
    let mut options = site.options();
    let found = assets::use_hashed_names(&mut options).expect("the hash file in the site root");
    assert_eq!(found, std::fs::canonicalize(site.0.join("hash.txt")).unwrap());
    assert!(options.hash_files);
    assert!(Path::new(&*options.hash_file).is_absolute());

    let addr = serve(options).await;
    let page = get(addr, "/room/standup", None).await;
    let html = String::from_utf8_lossy(&page.body);
    for name in
        [format!("/pkg/confab.{HASH}.js"), format!("/pkg/confab.{HASH}.wasm"), format!("/pkg/confab.{HASH}.css")]
    {
        assert!(html.contains(&name), "{name} in {html}");
    }
    let js = get(addr, &format!("/pkg/confab.{HASH}.js"), None).await;
    assert_eq!(js.header("cache-control"), Some(IMMUTABLE));
}

#[test]
fn a_stale_hash_file_is_ignored() {
    let site = fake_site("stale");
    // Names files that are not in the site (a later build without hashes, say).
    site.write("hash.txt", b"js: ZZZZZZZZZZZZZZZZZZZZZZ\nwasm: ZZZZZZZZZZZZZZZZZZZZZZ\ncss: ZZZZZZZZZZZZZZZZZZZZZZ\n");
    let mut options = site.options();
    assert_eq!(assets::use_hashed_names(&mut options), None);
    assert!(!options.hash_files);
}

#[tokio::test]
async fn the_start_page_loads_its_own_bundle_and_lists_the_full_one() {
    const START: &str = "StArTbUnDlE-0123456789";
    let site = hashed_site("start-bundle");
    site.write(&format!("pkg/confab-start.{START}.js"), b"export default function () {}");
    site.write(&format!("pkg/confab-start.{START}.wasm"), &wasm_bytes());
    site.write("start-hash.txt", format!("js: {START}\nwasm: {START}\n").as_bytes());
    let mut options = site.options();
    assets::use_hashed_names(&mut options).expect("the hash file in the site root");
    let start = assets::start_bundle(&options).expect("the start bundle");
    assert_eq!(start.room_assets, [format!("/pkg/confab.{HASH}.js"), format!("/pkg/confab.{HASH}.wasm")]);

    let addr = serve(options).await;
    let home = get(addr, "/", None).await;
    let html = String::from_utf8_lossy(&home.body);
    for wanted in [
        format!("href=\"/pkg/confab-start.{START}.js\""),
        format!("href=\"/pkg/confab-start.{START}.wasm\""),
        format!("href=\"/pkg/confab.{HASH}.css\""),
        format!("<meta name=\"confab-room-assets\" content=\"/pkg/confab.{HASH}.js /pkg/confab.{HASH}.wasm\""),
    ] {
        assert!(html.contains(&wanted), "{wanted} in {html}");
    }
    assert!(!html.contains(&format!("href=\"/pkg/confab.{HASH}.js\"")), "the full bundle is not loaded: {html}");

    // Every other page loads the full bundle and lists nothing.
    let room = get(addr, "/room/standup", None).await;
    let html = String::from_utf8_lossy(&room.body);
    assert!(html.contains(&format!("href=\"/pkg/confab.{HASH}.js\"")), "{html}");
    assert!(!html.contains("confab-start") && !html.contains("confab-room-assets"), "{html}");

    let wasm = get(addr, &format!("/pkg/confab-start.{START}.wasm"), None).await;
    assert_eq!(wasm.header("cache-control"), Some(IMMUTABLE));
}

#[tokio::test]
async fn a_split_build_names_its_loader_and_the_start_page_fetches_its_chunks_ahead() {
    const START: &str = "StArTbUnDlE-0123456789";
    const SPLIT: &str = "SpLiTlOaDeR-0123456789";
    const MANIFEST: &str = "MaNiFeSt-0123456789012";
    let site = hashed_site("start-split");
    site.write(&format!("pkg/confab-start.{START}.js"), b"export default function () {}");
    site.write(&format!("pkg/confab-start.{START}.wasm"), &wasm_bytes());
    site.write("start-hash.txt", format!("js: {START}\nwasm: {START}\n").as_bytes());
    // What `cargo leptos build --split` adds to the hash file and the pkg folder.
    site.write(
        "hash.txt",
        format!("js: {HASH}\nwasm: {HASH}\ncss: {HASH}\nmanifest: {MANIFEST}\nsplit: {SPLIT}\n").as_bytes(),
    );
    site.write(
        &format!("pkg/__wasm_split_manifest.{MANIFEST}.json"),
        br#"{"call_screen_1": ["split_call_screen_1.AbCdEfGhIjKlMnOpQrStUv"]}"#,
    );
    site.write(&format!("pkg/__wasm_split.{SPLIT}.js"), b"export const x = 1;");
    let mut options = site.options();
    assets::use_hashed_names(&mut options).expect("the hash file, with its split lines");
    let start = assets::start_bundle(&options).expect("the start bundle");
    assert_eq!(
        start.room_assets,
        [
            format!("/pkg/confab.{HASH}.js"),
            format!("/pkg/confab.{HASH}.wasm"),
            "/pkg/split_call_screen_1.AbCdEfGhIjKlMnOpQrStUv.wasm".to_owned(),
            format!("/pkg/__wasm_split.{SPLIT}.js"),
        ]
    );

    // A room page names the loader beside the script that imports it; the start page does not
    // load the full bundle, so it only lists the loader among the files to fetch ahead.
    let addr = serve(options).await;
    let preload = format!("<link rel=\"modulepreload\" href=\"/pkg/__wasm_split.{SPLIT}.js\">");
    let room = get(addr, "/room/standup", None).await;
    let html = String::from_utf8_lossy(&room.body);
    assert!(html.contains(&preload), "{preload} in {html}");
    let home = get(addr, "/", None).await;
    assert!(!String::from_utf8_lossy(&home.body).contains(&preload));
}

#[test]
fn a_start_bundle_whose_files_are_missing_is_ignored() {
    let site = fake_site("start-stale");
    site.write("start-hash.txt", b"js: ZZZZZZZZZZZZZZZZZZZZZZ\nwasm: ZZZZZZZZZZZZZZZZZZZZZZ\n");
    assert!(assets::start_bundle(&site.options()).is_none());
}
