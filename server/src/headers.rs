//! The security headers of every response, and the per-request nonce that lets the pages' own
//! inline scripts run under the Content-Security-Policy.
//!
//! [`security_headers`] makes a fresh nonce for each request and hands it to the Leptos
//! renderer through the request ([`CspNonce`], read by [`provide_csp_nonce`]), so the hydration
//! script Leptos writes into the page carries the same nonce the header names. Pages (HTML)
//! get the CSP, `X-Frame-Options` and `Permissions-Policy`; every response gets
//! `X-Content-Type-Options`, `Referrer-Policy` and, over HTTPS, `Strict-Transport-Security`.

use crate::serve::Scheme;
use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use leptos::prelude::{provide_context, use_context};

/// The nonce of one request's inline scripts (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CspNonce(pub String);

impl CspNonce {
    /// 128 random bits, base64url.
    fn new() -> Self {
        CspNonce(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()))
    }
}

/// A room link is a capability: it must not leak to other sites through `Referer`.
pub const REFERRER_POLICY: &str = "no-referrer";
/// Only this site's own pages may use the camera, the microphone and screen capture.
pub const PERMISSIONS_POLICY: &str = "camera=(self), microphone=(self), display-capture=(self)";
/// No page of this site may be framed (clickjacking); `frame-ancestors 'none'` says the same to
/// browsers that read the CSP.
pub const FRAME_OPTIONS: &str = "DENY";
/// Two years; subdomains are left alone (they may be other services of the operator).
pub const HSTS: &str = "max-age=63072000";

/// The Content-Security-Policy of a page whose inline scripts carry `nonce`.
///
/// - scripts: this site's files and the nonce'd inline hydration script; `'wasm-unsafe-eval'`
///   lets the app's WebAssembly compile (no JavaScript `eval`);
/// - connections: this site, which includes its own `ws:`/`wss:` (CSP Level 3); `host` adds
///   them by name for browsers that do not;
/// - styles, images, fonts, media: this site's files only (video elements play `MediaStream`s
///   through `srcObject`, which the CSP does not govern); no plugins, no frames, no `<base>`.
pub fn content_security_policy(nonce: &str, host: Option<&str>) -> String {
    let sockets = host.map(|h| format!(" ws://{h} wss://{h}")).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'nonce-{nonce}'; img-src 'self'; font-src 'self'; \
         media-src 'self'; connect-src 'self'{sockets}; manifest-src 'self'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Middleware: a nonce for the request, and the security headers on the response.
pub async fn security_headers(mut request: Request, next: Next) -> Response {
    let nonce = CspNonce::new();
    let https = request.extensions().get::<Scheme>() == Some(&Scheme::Https);
    let host =
        request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| is_host(h)).map(str::to_owned);
    request.extensions_mut().insert(nonce.clone());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if is_html(headers) {
        let csp = content_security_policy(&nonce.0, host.as_deref());
        if let Ok(csp) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static(FRAME_OPTIONS));
        headers.insert(HeaderName::from_static("permissions-policy"), HeaderValue::from_static(PERMISSIONS_POLICY));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static(REFERRER_POLICY));
    if https {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    response
}

/// Leptos context (`leptos_routes_with_context`): renders the page with the request's
/// [`CspNonce`], so `HydrationScripts` and every inline script Leptos writes carry it.
pub fn provide_csp_nonce() {
    let nonce =
        use_context::<axum::http::request::Parts>().and_then(|parts| parts.extensions.get::<CspNonce>().cloned());
    if let Some(CspNonce(nonce)) = nonce {
        provide_context(leptos::nonce::Nonce::from_value(nonce));
    }
}

fn is_html(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"))
}

/// Whether `host` (a `Host` header) is a plain host name or address with an optional port, and
/// so safe to name in the policy.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_nonce_and_the_sockets() {
        let csp = content_security_policy("abc", Some("meet.example.org:8443"));
        assert!(csp.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval'"));
        assert!(csp.contains("connect-src 'self' ws://meet.example.org:8443 wss://meet.example.org:8443;"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(content_security_policy("abc", None).contains("connect-src 'self';"));
    }

    #[test]
    fn only_plain_hosts_are_named() {
        assert!(is_host("127.0.0.1:3000") && is_host("[::1]:3000") && is_host("meet.example.org"));
        assert!(!is_host("evil; script-src *") && !is_host("a b") && !is_host("") && !is_host("x'y"));
    }

    #[test]
    fn nonces_differ() {
        let (a, b) = (CspNonce::new(), CspNonce::new());
        assert_ne!(a, b);
        assert_eq!(a.0.len(), 22);
    }
}
