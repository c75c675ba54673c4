//! The room registry as a state machine (the model is `server/tests/registry_model.rs`, which
//! the server's drift test also replays this target's corpus through, on both registries):
//! any sequence of joins, relays, media changes, leaves, detaches, expiries and reads, on the
//! in-memory registry with its real outboxes (so slow readers are removed too).
#![no_main]

use confab_server::registry::{outbox, Registry, Rooms};
use libfuzzer_sys::fuzz_target;

#[path = "../../server/tests/registry_model.rs"]
mod registry_model;

fuzz_target!(|ops: Vec<registry_model::Op>| {
    let registry = Registry::Memory(Rooms::with_limits(registry_model::limits()));
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    // In memory nothing waits: the run completes without the runtime's timers or I/O.
    runtime.block_on(registry_model::run(&registry, "", ops, outbox));
});
