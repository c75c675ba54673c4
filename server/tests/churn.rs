//! The churn leak check, in a test binary of its own: it reads this process's resident set, which
//! the other integration tests (one binary, run in parallel) would move by megabytes.

#[path = "common/mod.rs"]
mod common;

use common::*;

/// The resident set of this process, in KiB.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_join_leave_cycles_leave_nothing_behind() {
    const CYCLES: usize = 10_000;
    const PARALLEL: usize = 16;
    let server = Arc::new(
        TestServer::with(HubConfig {
            limits: Limits { max_rooms: 100, max_peers: 200, ..Limits::rooms_of(2) },
            max_connections_per_ip: PARALLEL * 4,
            ..HubConfig::default()
        })
        .await,
    );
    // Each worker joins one of a few rooms, sometimes relays, and leaves either way a browser
    // can: a leave message, a close frame, or a dropped connection.
    let run = |cycles: usize| {
        let tasks: Vec<_> = (0..PARALLEL)
            .map(|worker| {
                let server = server.clone();
                tokio::spawn(async move {
                    for i in 0..cycles / PARALLEL {
                        let mut client = server.connect().await;
                        let room = format!("room-{}", (worker + i) % 50);
                        client.send(&join_msg(room, "Churn")).await;
                        // Places held for dropped sockets can fill a room, or the server, for a while.
                        match client.recv().await {
                            ServerMsg::Welcome { .. }
                            | ServerMsg::Error { code: ErrorCode::RoomFull | ErrorCode::ServerFull, .. } => {}
                            other => panic!("expected a welcome, room_full or server_full, got {other:?}"),
                        }
                        match i % 3 {
                            0 => client.send(&ClientMsg::Leave).await,
                            1 => client.ws.close(None).await.unwrap(),
                            _ => {}
                        }
                        drop(client);
                    }
                })
            })
            .collect();
        async move {
            for task in tasks {
                task.await.unwrap();
            }
        }
    };
    run(1_000).await;
    wait_until_empty(&server).await;
    let before = rss_kib();
    run(CYCLES).await;
    wait_until_empty(&server).await;
    let after = rss_kib();
    println!("RSS before {before} KiB, after {CYCLES} cycles {after} KiB");
    assert_eq!(server.hub.rooms.room_count().await.unwrap(), 0);
    assert_eq!(server.hub.rooms.peer_count().await.unwrap(), 0);
    assert_eq!(server.hub.connections(), 0);
    // Not a speed goal, a leak check: 10,000 leaked rooms or sessions would be tens of MiB.
    assert!(after < before + 8 * 1024, "RSS grew from {before} KiB to {after} KiB");
}

async fn wait_until_empty(server: &TestServer) {
    let emptied = tokio::time::timeout(Duration::from_secs(30), async {
        while server.hub.rooms.peer_count().await.unwrap() != 0 || server.hub.connections() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if emptied.is_err() {
        let peers = server.hub.rooms.peer_count().await.unwrap();
        panic!("{peers} peers and {} connections left", server.hub.connections());
    }
}
