//! The two registries cannot drift apart: every input of the `rooms` fuzz corpus is replayed on
//! the in-memory registry and on a real `redis-server`, and both must give the same transcript
//! (every answer, every message each member received, every count and listing after every
//! step), while each is checked against the model.

use super::common::Redis;
use super::registry_model::{self, Op};
use arbitrary::{Arbitrary, Unstructured};
use confab_server::registry::{outbox_bounded, Cluster, ClusterConfig, Registry, Rooms, OUTBOX_BYTES};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn both_registries_give_the_same_transcript_for_the_fuzz_corpus() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/rooms");
    let mut files: Vec<_> = std::fs::read_dir(&corpus).expect("the rooms corpus").map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 100, "only {} inputs in {}", files.len(), corpus.display());
    let redis = Redis::start().await;
    let config = ClusterConfig { url: redis.url.clone(), presence_ttl: Duration::from_secs(10) };
    let shutdown = CancellationToken::new();
    let cluster =
        Registry::Cluster(Cluster::connect(config, registry_model::limits(), shutdown.clone()).await.unwrap());
    // Outboxes that never fill: a slow reader is removed at once in memory but a moment later in
    // Redis, which is a difference of timing, not of behaviour (the fuzzer covers it in memory).
    let roomy = || outbox_bounded(100_000, 1000 * OUTBOX_BYTES);
    let (mut replayed, mut steps) = (0, 0);
    for (n, file) in files.iter().enumerate() {
        let data = std::fs::read(file).unwrap();
        // As libFuzzer hands the bytes to the target: inputs that do not decode are skipped.
        let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(&data)) else { continue };
        let prefix = format!("f{n}-");
        let memory = Registry::Memory(Rooms::with_limits(registry_model::limits()));
        let in_memory = registry_model::run(&memory, &prefix, ops.clone(), roomy).await;
        let in_redis = registry_model::run(&cluster, &prefix, ops, roomy).await;
        if let Some(at) = in_memory.iter().zip(&in_redis).position(|(m, r)| m != r) {
            let keep = std::env::temp_dir().join("confab-drift");
            std::fs::write(keep.with_extension("memory"), in_memory.join("\n")).unwrap();
            std::fs::write(keep.with_extension("redis"), in_redis.join("\n")).unwrap();
            panic!(
                "{}: the registries differ at line {at} (both transcripts in {}.*):\n  memory: {}\n  redis:  {}",
                file.display(),
                keep.display(),
                in_memory[at],
                in_redis[at]
            );
        }
        assert_eq!(in_memory.len(), in_redis.len(), "{}", file.display());
        replayed += 1;
        steps += in_memory.len();
    }
    assert!(replayed >= 100, "only {replayed} inputs decoded");
    eprintln!("{replayed} inputs, {steps} transcript lines, the same on both registries");
    shutdown.cancel();
}
