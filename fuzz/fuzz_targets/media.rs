//! Datagrams to the SFU's media port: whatever arrives, from a connected participant's address
//! or a stranger's, the engine's demultiplexer (RFC 7983's first byte, then the owner by address
//! and `Rtc::accepts`) and the participant's DTLS and SRTP handle it without panicking, and every
//! datagram has exactly one outcome. One engine and participant per fuzzing thread, made again
//! when an input got the participant dropped.
#![no_main]

use std::cell::RefCell;
use std::time::Duration;

use confab_media::harness::Harness;
use confab_media::MediaStats;
use libfuzzer_sys::fuzz_target;

struct Setup {
    runtime: tokio::runtime::Runtime,
    harness: Harness,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let harness = runtime.block_on(async {
        let mut harness = Harness::new().unwrap();
        assert!(harness.connect(Duration::from_secs(10)).await.unwrap(), "the bot did not connect");
        harness
    });
    Setup { runtime, harness }
}

thread_local! {
    static SETUP: RefCell<Option<Setup>> = const { RefCell::new(None) };
}

fuzz_target!(|datagrams: Vec<(bool, Vec<u8>)>| {
    SETUP.with(|cell| {
        let mut cell = cell.borrow_mut();
        if !cell.as_ref().is_some_and(|s| s.harness.joined()) {
            *cell = Some(setup());
        }
        let Setup { runtime, harness } = cell.as_mut().unwrap();
        let _entered = runtime.enter();
        let datagrams = &datagrams[..datagrams.len().min(32)];
        let s = harness.stats();
        let counts = |s: &MediaStats| {
            [&s.datagrams, &s.garbage, &s.unowned, &s.delivered].map(|c| MediaStats::get(c))
        };
        let before = counts(s);
        for (from_member, data) in datagrams {
            harness.receive(data, *from_member);
        }
        let after = counts(harness.stats());
        let [n, garbage, unowned, delivered] = [0, 1, 2, 3].map(|i| after[i] - before[i]);
        assert_eq!(n, datagrams.len() as u64);
        assert_eq!(garbage + unowned + delivered, n);
    });
});
