//! The compiled assets (`/pkg/*`: wasm, JS glue, CSS) and how every response may be cached.
//!
//! - [`pkg_routes`] serves `<site root>/pkg` with the `.br` and `.gz` files the build wrote next
//!   to each asset (`scripts/precompress.sh`: brotli quality 11 and gzip -9, once per build), so
//!   no request compresses the wasm again. Without them the plain file is sent and the app's
//!   `CompressionLayer` compresses it on the fly; it never compresses a response twice (it leaves
//!   anything with a `Content-Encoding` alone).
//! - [`cache_headers`] sets `Cache-Control` where a handler did not: names with a content hash
//!   (cargo-leptos's `hash-files`: `confab.<hash>.wasm`) are [`IMMUTABLE`]; other `/pkg` files
//!   are revalidated on every use ([`REVALIDATE`]: a JS glue and a wasm of two builds must never
//!   meet); other static files (the favicon) get a [`SHORT`] cache; pages are never stored long.
//! - [`use_hashed_names`] points Leptos at cargo-leptos's hash file, so the pages name the hashed
//!   files, when the site was built with hashes.
//! - [`start_bundle`] finds the start page's own, smaller bundle (`scripts/start-bundle.sh`), which
//!   the start page then loads instead of the full one.

use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use leptos::config::LeptosOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower_http::services::ServeDir;

/// For names that change whenever their content does: kept for a year, never revalidated.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// For unhashed `/pkg` files: stored, but checked (`If-Modified-Since`) before every use.
pub const REVALIDATE: &str = "no-cache";
/// For other static files (favicon): an hour.
pub const SHORT: &str = "public, max-age=3600";
/// For pages: rendered per request (language, room), so checked before every use.
pub const PAGE: &str = "no-cache";

/// The name cargo-leptos gives the file listing the content hashes (next to the server binary).
pub const HASH_FILE_NAME: &str = "hash.txt";

/// Where `scripts/start-bundle.sh` lists the start page's bundle's hashes (in the site root).
pub const START_HASH_FILE_NAME: &str = "start-hash.txt";
/// The output name of the start page's bundle: `confab-start.<hash>.{js,wasm}`.
pub const START_OUTPUT_NAME: &str = "confab-start";

/// `/<pkg dir>/*` from `<site root>/<pkg dir>`, preferring the precompressed `.br`, then `.gz`
/// file when the request accepts it and the file exists.
pub fn pkg_routes(options: &LeptosOptions) -> Router {
    let dir = Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    let files = ServeDir::new(dir).precompressed_br().precompressed_gzip();
    Router::new().nest_service(&format!("/{}", options.site_pkg_dir), files)
}

/// Middleware: adds `Cache-Control` (and `Vary: Accept-Encoding` for files) to responses that
/// have none, by what they are. Layer it inside the compression layer, so that one sees the
/// `Vary` and does not add a second.
pub async fn cache_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let ok = matches!(response.status(), StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED);
    let headers = response.headers_mut();
    if headers.contains_key(header::CACHE_CONTROL) {
        return response;
    }
    let is_html =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    // ServeDir marks every file it sends with its modification time; handlers do not.
    let is_file = headers.contains_key(header::LAST_MODIFIED);
    let policy = if is_html {
        PAGE
    } else if !ok {
        return response;
    } else if path.starts_with("/pkg/") {
        if is_hashed(file_name(&path)) {
            IMMUTABLE
        } else {
            REVALIDATE
        }
    } else if is_file {
        SHORT
    } else {
        return response;
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    if !is_html && !varies_by_encoding(headers) {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn varies_by_encoding(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("accept-encoding") || v.trim() == "*")
}

/// Whether a file name carries a content hash as cargo-leptos writes it: `<stem>.<hash>.<ext>`,
/// the hash being an MD5 in unpadded base64url (22 characters).
pub fn is_hashed(file_name: &str) -> bool {
    let parts: Vec<&str> = file_name.split('.').collect();
    parts.len() >= 3
        && parts[1..parts.len() - 1]
            .iter()
            .any(|p| p.len() == 22 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// Sets `options.hash_files` and `options.hash_file` when the site was built with content
/// hashes: cargo-leptos writes `hash.txt` next to the server binary (where Leptos looks by
/// default); a copy in the site root is used too (for a deployment that ships the site folder
/// and the binary apart). A hash file is taken only if the files it names are in the site, so
/// a stale one never breaks the pages; without one the plain names are used.
///
/// Leptos joins `hash_file` to the binary's folder, so an absolute path is stored.
pub fn use_hashed_names(options: &mut LeptosOptions) -> Option<PathBuf> {
    use_hash_file(options, HASH_FILE_NAME)
}

/// Points `options` at the hash file `name` (next to the binary, else in the site root) whose
/// files, named by `options.output_name`, are all in the site; see [`use_hashed_names`].
fn use_hash_file(options: &mut LeptosOptions, name: &str) -> Option<PathBuf> {
    let beside_binary = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join(name)));
    let in_site = Path::new(&*options.site_root).join(name);
    let found = beside_binary.into_iter().chain([in_site]).find(|candidate| names_exist(candidate, options))?;
    let found = std::fs::canonicalize(&found).unwrap_or(found);
    options.hash_files = true;
    options.hash_file = Arc::from(found.to_string_lossy().as_ref());
    Some(found)
}

/// The start page's own bundle, when the site has one (`start-hash.txt` next to the binary or
/// in the site root, found as [`use_hashed_names`] finds `hash.txt`) whose files are all there:
/// options that name its files, and the full bundle's script and wasm for the start page to
/// fetch ahead (only when `options` uses hashed names, which are cached for good). Call after
/// [`use_hashed_names`].
pub fn start_bundle(options: &LeptosOptions) -> Option<confab_app::StartBundle> {
    let mut start = options.clone();
    start.output_name = Arc::from(START_OUTPUT_NAME);
    use_hash_file(&mut start, START_HASH_FILE_NAME)?;
    let room_assets = if options.hash_files {
        let text = std::fs::read_to_string(&*options.hash_file).unwrap_or_default();
        let pkg = &options.site_pkg_dir;
        let mut urls = Vec::new();
        for (kind, hash) in hashes(&text) {
            match kind {
                "js" | "wasm" => urls.push(format!("/{pkg}/{}.{hash}.{kind}", options.output_name)),
                // `cargo leptos build --split`: the split-off chunks (listed in the manifest)…
                "manifest" => urls.extend(split_chunks(options, hash).map(|chunk| format!("/{pkg}/{chunk}.wasm"))),
                _ => {}
            }
        }
        // … and their loader.
        urls.extend(split_loader(options).map(|confab_app::SplitLoader(url)| url));
        urls
    } else {
        Vec::new()
    };
    Some(confab_app::StartBundle { options: start, room_assets })
}

/// The wasm chunks (file names without `.wasm`) that the split manifest with this hash lists:
/// `{"<split>": ["<file>", …], …}`, in a stable order. None when it cannot be read.
fn split_chunks(options: &LeptosOptions, hash: &str) -> impl Iterator<Item = String> {
    let path =
        Path::new(&*options.site_root).join(&*options.site_pkg_dir).join(format!("__wasm_split_manifest.{hash}.json"));
    let manifest: std::collections::BTreeMap<String, Vec<String>> =
        std::fs::read_to_string(path).ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
    let mut chunks: Vec<String> = manifest.into_values().flatten().collect();
    chunks.sort();
    chunks.dedup();
    chunks.into_iter()
}

/// The full bundle's split loader (`cargo leptos build --split`: the `split` line of the hash
/// file `options` uses), if the site has one. Call after [`use_hashed_names`].
pub fn split_loader(options: &LeptosOptions) -> Option<confab_app::SplitLoader> {
    if !options.hash_files {
        return None;
    }
    let text = std::fs::read_to_string(&*options.hash_file).ok()?;
    let (_, hash) = hashes(&text).find(|(kind, _)| *kind == "split")?;
    let name = format!("__wasm_split.{hash}.js");
    let pkg = Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    pkg.join(&name).is_file().then(|| confab_app::SplitLoader(format!("/{}/{name}", options.site_pkg_dir)))
}

/// The `<ext>: <hash>` lines of a hash file.
fn hashes(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(|line| line.split_once(':')).map(|(ext, hash)| (ext.trim(), hash.trim()))
}

/// Whether the hash file at `path` exists and every `<output>.<hash>.<ext>` it names is in the
/// site's pkg folder.
fn names_exist(path: &Path, options: &LeptosOptions) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else { return false };
    let pkg = Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    let mut named = 0;
    for (ext, hash) in hashes(&text) {
        if !matches!(ext, "js" | "wasm" | "css") {
            continue;
        }
        if !pkg.join(format!("{}.{hash}.{ext}", options.output_name)).is_file() {
            return false;
        }
        named += 1;
    }
    named > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_are_cargo_leptos_ones() {
        assert!(is_hashed("confab.AbCdEfGhIjKlMnOpQrStUv.wasm"));
        assert!(is_hashed("confab.Ab-d_fGhIjKlMnOpQrStUv.js"));
        assert!(is_hashed("confab.AbCdEfGhIjKlMnOpQrStUv.css"));
        assert!(!is_hashed("confab.wasm"));
        assert!(!is_hashed("confab.css"));
        assert!(!is_hashed("favicon.svg"));
        assert!(!is_hashed("AbCdEfGhIjKlMnOpQrStUv.js"));
        assert!(!is_hashed("confab.AbCdEfGhIjKlMnOpQrSt.wasm"));
        assert!(!is_hashed("confab.AbCdEfGhIjKlMnOpQrS/v.wasm"));
    }
}
