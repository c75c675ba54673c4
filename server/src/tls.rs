//! HTTPS in the one binary: a certificate from files, or a self-signed one for this machine.

use std::net::IpAddr;

/// A self-signed certificate (PEM) and its key (PEM) for `localhost`, this machine's host name,
/// the listening address and the machine's other addresses: enough to try the app from a phone
/// on the same network (after accepting the browser's warning).
pub fn self_signed(extra: &[IpAddr]) -> Result<(String, String), rcgen::Error> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    for ip in extra {
        if !ip.is_unspecified() {
            names.push(ip.to_string());
        }
    }
    names.sort();
    names.dedup();
    let cert = rcgen::generate_simple_self_signed(names)?;
    Ok((cert.cert.pem(), cert.signing_key.serialize_pem()))
}
