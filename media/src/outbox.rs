//! The datagrams of a turn, sent together: one `sendmmsg` for up to [`BATCH`] of them on Linux
//! instead of one `sendto` each (a forwarded frame goes to every subscriber, so a turn sends
//! tens of datagrams). Elsewhere each is sent on its own.

use std::net::SocketAddr;

use str0m::net::Transmit;
use tokio::net::UdpSocket;

use crate::stats::MediaStats;

/// Datagrams held before they are sent, and sent by one system call.
pub(crate) const BATCH: usize = 64;

#[derive(Default)]
pub(crate) struct Outbox {
    queue: Vec<(SocketAddr, Vec<u8>)>,
}

impl Outbox {
    /// Queues a datagram; sends the queue when it is full.
    pub fn push(&mut self, socket: &UdpSocket, transmit: Transmit, stats: &MediaStats) {
        self.queue.push((transmit.destination, transmit.contents.into()));
        if self.queue.len() >= BATCH {
            self.flush(socket, stats);
        }
    }

    /// Sends what is queued. A datagram the socket does not take (a full send buffer, an error
    /// an earlier datagram to the same address left) is dropped and counted, as the network
    /// would drop it; RTP copes.
    pub fn flush(&mut self, socket: &UdpSocket, stats: &MediaStats) {
        let mut sent = 0;
        while sent < self.queue.len() {
            match send_many(socket, &self.queue[sent..]) {
                Ok(0) => {
                    MediaStats::add(&stats.send_errors, 1);
                    sent += 1;
                }
                Ok(n) => sent += n,
                Err(e) => {
                    MediaStats::add(&stats.send_errors, 1);
                    tracing::debug!(error = %e, to = %self.queue[sent].0, "media send");
                    if e.kind() == std::io::ErrorKind::WouldBlock {
                        MediaStats::add(&stats.send_errors, (self.queue.len() - sent - 1) as u64);
                        break;
                    }
                    sent += 1;
                }
            }
        }
        self.queue.clear();
    }
}

/// Sends the first datagrams of `batch` with one `sendmmsg`; how many went. An error is the
/// first datagram's (the kernel reports a later one's by sending fewer).
#[cfg(target_os = "linux")]
fn send_many(socket: &UdpSocket, batch: &[(SocketAddr, Vec<u8>)]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;

    let batch = &batch[..batch.len().min(BATCH)];
    let addrs: Vec<socket2::SockAddr> = batch.iter().map(|(to, _)| socket2::SockAddr::from(*to)).collect();
    let mut iovecs: Vec<libc::iovec> = batch
        .iter()
        .map(|(_, data)| libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = addrs
        .iter()
        .zip(iovecs.iter_mut())
        .map(|(addr, iov)| {
            // SAFETY: an all-zero msghdr is a valid empty header (no name, no buffers, no
            // control data); the fields that matter are set below.
            let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
            header.msg_name = addr.as_ptr() as *mut libc::c_void;
            header.msg_namelen = addr.len();
            header.msg_iov = iov;
            header.msg_iovlen = 1;
            libc::mmsghdr { msg_hdr: header, msg_len: 0 }
        })
        .collect();
    let count = u32::try_from(headers.len()).unwrap_or(u32::MAX);
    // SAFETY: every header points at an address and one iovec that live in `addrs`, `iovecs`
    // and `batch` until this call returns; the kernel only reads them (and writes `msg_len`).
    let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), count, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(usize::try_from(sent).unwrap_or(0))
}

#[cfg(not(target_os = "linux"))]
fn send_many(socket: &UdpSocket, batch: &[(SocketAddr, Vec<u8>)]) -> std::io::Result<usize> {
    let (to, data) = &batch[0];
    socket.try_send_to(data, *to).map(|_| 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transmit(to: SocketAddr, byte: u8) -> Transmit {
        let from = SocketAddr::from(([127, 0, 0, 1], 9));
        Transmit { proto: str0m::net::Protocol::Udp, source: from, destination: to, contents: vec![byte; 3].into() }
    }

    #[tokio::test]
    async fn a_turn_s_datagrams_arrive_in_order_and_a_refused_one_costs_only_itself() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let stats = MediaStats::default();
        let mut outbox = Outbox::default();
        // More than one batch, to two places, with one datagram no socket can send (port 0).
        for i in 0..150u8 {
            let to = match i {
                70 => SocketAddr::from(([127, 0, 0, 1], 0)),
                i if i % 2 == 0 => to_a,
                _ => to_b,
            };
            outbox.push(&socket, transmit(to, i), &stats);
        }
        outbox.flush(&socket, &stats);
        assert_eq!(MediaStats::get(&stats.send_errors), 1);
        let mut buf = [0u8; 16];
        let to_a_expected: Vec<u8> = (0..150u8).filter(|i| i % 2 == 0 && *i != 70).collect();
        let to_b_expected: Vec<u8> = (0..150u8).filter(|i| i % 2 == 1).collect();
        for (receiver, expected) in [(&a, to_a_expected), (&b, to_b_expected)] {
            for i in expected {
                let (n, _) = receiver.recv_from(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], &[i; 3]);
            }
        }
    }
}
