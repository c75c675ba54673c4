//! Datagrams to the SFU's media port: whatever arrives, from the joined participant's address or
//! a stranger's, the engine's demultiplexer (RFC 7983's first byte, then the owner by address and
//! `Rtc::accepts`) and the participant's connection handle it without panicking, and every
//! datagram has exactly one outcome.
#![no_main]

use std::sync::atomic::AtomicU64;

use confab_media::harness::Harness;
use confab_media::MediaStats;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|datagrams: Vec<(bool, Vec<u8>)>| {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _entered = runtime.enter();
    let mut harness = Harness::new().unwrap();
    let datagrams = &datagrams[..datagrams.len().min(32)];
    for (from_member, data) in datagrams {
        harness.receive(data, *from_member);
    }
    let s = harness.stats();
    let get = |c: &AtomicU64| MediaStats::get(c);
    assert_eq!(get(&s.datagrams), datagrams.len() as u64);
    assert_eq!(get(&s.garbage) + get(&s.unowned) + get(&s.delivered), datagrams.len() as u64);
});
