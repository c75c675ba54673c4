//! `confab`: parse the configuration, start logging, serve until Ctrl-C or SIGTERM.

use clap::Parser;
use confab_protocol::IceTransportPolicy;
use confab_server::addr::{Cidr, TrustedProxies};
use confab_server::registry::{Cluster, ClusterConfig, PasswordLimits, Registry, Rooms};
use confab_server::serve::{ServeConfig, Server};
use confab_server::session::RateLimit;
use confab_server::turn::{EmbeddedConfig, EmbeddedTurn, Quota};
use confab_server::{app, Hub, HubConfig, Limits, Origins, TurnConfig};
use leptos::config::LeptosOptions;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_subscriber::EnvFilter;

/// A self-hosted video-call server: serves the web app and introduces the browsers of a room to
/// each other over WebSocket. Media flows browser to browser.
#[derive(Debug, Parser)]
#[command(name = "confab", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CONFAB_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,

    /// STUN server URLs handed to browsers, comma-separated; an empty value turns STUN off.
    #[arg(
        long,
        env = "CONFAB_STUN",
        value_delimiter = ',',
        default_value = "stun:stun.l.google.com:19302,stun:stun1.l.google.com:19302"
    )]
    stun: Vec<String>,

    /// The most people in one room. Default: 50 with the SFU, 6 (a mesh's limit) without.
    #[arg(long, env = "CONFAB_ROOM_CAPACITY", value_parser = clap::value_parser!(u16).range(1..))]
    room_capacity: Option<u16>,

    /// Rooms of this many people or more send media through this server (its SFU) instead of
    /// peer to peer; 0 keeps every room a mesh. Default: 3, or 0 with `--redis-url` (the SFU
    /// serves the people on its own node only, so the two cannot be asked for together).
    #[arg(long, env = "CONFAB_SFU_FROM")]
    sfu_from: Option<u16>,

    /// The UDP address the SFU's media goes through (one port for every participant; open it in
    /// the firewall). Default: the `--addr` IP, a free port.
    #[arg(long, env = "CONFAB_MEDIA_UDP")]
    media_udp: Option<SocketAddr>,

    /// The address browsers reach the SFU at: behind a 1:1 NAT, or to pick one of several. Default
    /// with media on all interfaces: the address of the interface this host reaches the
    /// internet through.
    #[arg(long, env = "CONFAB_MEDIA_PUBLIC_IP")]
    media_public_ip: Option<IpAddr>,

    /// Fit each browser's video from the SFU to its downlink (TWCC bandwidth estimation: lower
    /// layers for a slow link). Off by default: str0m's estimator comes with a pacer, and on an
    /// SFU whose CPU is saturated the pacer starved the video of a room of 25 entirely.
    #[arg(long, env = "CONFAB_SFU_BWE")]
    sfu_bwe: bool,

    /// Heartbeat period in milliseconds; a socket silent for three periods is dropped.
    #[arg(long, env = "CONFAB_HEARTBEAT_MS", default_value_t = 2500, value_parser = clap::value_parser!(u64).range(50..))]
    heartbeat_ms: u64,

    /// How long, in milliseconds, the place of a connection that dropped without closing is
    /// held so that the same browser tab can resume it.
    #[arg(long, env = "CONFAB_RESUME_GRACE_MS", default_value_t = 5000)]
    resume_grace_ms: u64,

    /// Which ICE candidates browsers may use: `all`, or `relay` to send all media through TURN
    /// (participants then never learn each other's addresses).
    #[arg(long, env = "CONFAB_ICE_TRANSPORT_POLICY", default_value = "all", value_parser = parse_policy)]
    ice_transport_policy: IceTransportPolicy,

    /// TURN server URLs handed to browsers with per-join credentials, comma-separated, e.g.
    /// `turn:turn.example.org:3478?transport=udp,turn:turn.example.org:3478?transport=tcp`.
    #[arg(long, env = "CONFAB_TURN_URLS", value_delimiter = ',')]
    turn_urls: Vec<String>,

    /// The secret shared with the TURN server (coturn: `use-auth-secret`, `static-auth-secret`).
    /// Prefer the environment variable: command lines are visible to other users.
    #[arg(long, env = "CONFAB_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,

    /// How long, in seconds, minted TURN credentials stay valid for new allocations. Joined
    /// participants get fresh ones every half of it, and an allocation made with a credential
    /// may be refreshed after it expires (the embedded server; coturn checks a credential when
    /// the allocation is made), so a short lifetime costs nothing and bounds what a leaked
    /// credential is worth.
    #[arg(long, env = "CONFAB_TURN_TTL_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(60..))]
    turn_ttl_secs: u64,

    /// Run a TURN server inside this process on this UDP address (e.g. `0.0.0.0:3478`), with
    /// credentials from the same secret (a random one if `--turn-secret` is not given). Its URL is
    /// handed to browsers unless `--turn-urls` names others.
    #[arg(long, env = "CONFAB_TURN_EMBEDDED")]
    turn_embedded: Option<SocketAddr>,

    /// The address browsers reach the embedded TURN server at (needed when it listens on all
    /// interfaces).
    #[arg(long, env = "CONFAB_TURN_PUBLIC_IP")]
    turn_public_ip: Option<IpAddr>,

    /// UDP ports the embedded TURN server relays on, `MIN-MAX` (open them in the firewall).
    #[arg(long, env = "CONFAB_TURN_RELAY_PORTS", default_value = "49152-65535", value_parser = parse_ports)]
    turn_relay_ports: (u16, u16),

    /// The embedded TURN server's realm.
    #[arg(long, env = "CONFAB_TURN_REALM", default_value = "confab")]
    turn_realm: String,

    /// Internal ranges the embedded TURN server may relay to after all, comma-separated CIDRs
    /// (`10.0.0.0/8,fd00::/8`). By default it refuses loopback, private, link-local, multicast
    /// and reserved addresses and this host's own addresses (except its relay ports): browsers
    /// in a call never need them.
    #[arg(long, env = "CONFAB_TURN_ALLOW_PEERS", value_delimiter = ',')]
    turn_allow_peers: Vec<ipnet::IpNet>,

    /// The most live TURN allocations one participant's credential may hold (a browser makes
    /// one per peer connection and network interface).
    #[arg(long, env = "CONFAB_TURN_USER_QUOTA", default_value_t = Quota::default().per_user)]
    turn_user_quota: usize,

    /// The most live TURN allocations from one source address (IPv6 by /64); people behind one
    /// NAT share it.
    #[arg(long, env = "CONFAB_TURN_IP_QUOTA", default_value_t = Quota::default().per_ip)]
    turn_ip_quota: usize,

    /// The most live TURN allocations in all (each holds a relay port and a file descriptor).
    #[arg(long, env = "CONFAB_TURN_TOTAL_QUOTA", default_value_t = Quota::default().total)]
    turn_total_quota: usize,

    /// Bits per second one TURN allocation may relay in each direction (0: no cap).
    #[arg(long, env = "CONFAB_TURN_MAX_BPS", default_value_t = confab_server::turn::DEFAULT_MAX_BPS)]
    turn_max_bps: u64,

    /// Page origins allowed to open the signaling socket, comma-separated
    /// (`https://meet.example.org`), or `*` for any. Empty: only pages of this server.
    #[arg(long, env = "CONFAB_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,

    /// The most rooms at once.
    #[arg(long, env = "CONFAB_MAX_ROOMS", default_value_t = 10_000)]
    max_rooms: usize,

    /// The most people in rooms at once, over all rooms.
    #[arg(long, env = "CONFAB_MAX_PEERS", default_value_t = 20_000)]
    max_peers: usize,

    /// The most open signaling connections.
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS", default_value_t = 20_000)]
    max_connections: usize,

    /// The most open signaling connections from one IP address (IPv6: from one /64). Behind a
    /// reverse proxy, name it in `--trusted-proxies` so that clients are told apart.
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS_PER_IP", default_value_t = 32)]
    max_connections_per_ip: usize,

    /// The most places in rooms one client address (an IPv6 address: its /64) may hold at once,
    /// counting the places of dropped connections held for their return (`--resume-grace-ms`).
    /// Behind a reverse proxy raise it as `--max-connections-per-ip`.
    #[arg(long, env = "CONFAB_MAX_PLACES_PER_IP", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    max_places_per_ip: u32,

    /// The most joins one client address (an IPv6 address: its /64) may make per second; more
    /// are refused with `too_many_joins` until the second is over. Taking back a held place
    /// (a reconnect) does not count.
    #[arg(long, env = "CONFAB_MAX_JOINS_PER_IP_PER_SEC", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    max_joins_per_ip_per_sec: u32,

    /// Wrong room passwords one client address (an IPv6 address: its /64) may give, over all
    /// rooms, within `--password-failure-window-secs`; after that its joins to rooms with a
    /// password are refused with `too_many_attempts` (unchecked) until the window ends.
    #[arg(long, env = "CONFAB_PASSWORD_FAILURES_PER_IP", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    password_failures_per_ip: u32,

    /// The window of `--password-failures-per-ip`, in seconds, from the address's first wrong
    /// password.
    #[arg(long, env = "CONFAB_PASSWORD_FAILURE_WINDOW_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    password_failure_window_secs: u64,

    /// Wrong passwords (from anyone) a room takes before each further attempt must wait: 1 s,
    /// then twice as long after each wrong password, up to `--password-max-delay-secs`.
    #[arg(long, env = "CONFAB_PASSWORD_FREE_FAILURES_PER_ROOM", default_value_t = 3)]
    password_free_failures_per_room: u32,

    /// The longest wait between password attempts on one room, in seconds.
    #[arg(long, env = "CONFAB_PASSWORD_MAX_DELAY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    password_max_delay_secs: u64,

    /// Reverse proxies whose `X-Forwarded-For` (or else `Forwarded`) header names the client,
    /// for the per-address limit and the logs: addresses or blocks, comma-separated
    /// (`127.0.0.1,10.0.0.0/8,fd00::/8`). From anyone else the headers are ignored.
    #[arg(long, env = "CONFAB_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<Cidr>,

    /// The most open connections that are not WebSockets (page, asset and API requests, and
    /// connections kept alive between them). When all are taken, the one idle longest is
    /// closed for the newcomer.
    #[arg(long, env = "CONFAB_MAX_HTTP_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_http_connections: u64,

    /// Seconds a client has to finish the TLS handshake and send a request's headers; on
    /// HTTP/1.1 also the longest a kept-alive connection waits for the next request.
    #[arg(long, env = "CONFAB_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_secs: u64,

    /// Seconds a connection may stay open with no request in progress (HTTP/2; HTTP/1.1 is cut
    /// sooner by `--header-timeout-secs`). WebSockets have their own heartbeat.
    #[arg(long, env = "CONFAB_IDLE_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout_secs: u64,

    /// Messages one socket may send in a burst before the per-second rate applies.
    #[arg(long, env = "CONFAB_RATE_BURST", default_value_t = confab_server::session::RATE_BURST)]
    rate_burst: f64,

    /// Messages one socket may send per second (beyond that they are refused with
    /// `rate_limited`). Raise it only for load tests.
    #[arg(long, env = "CONFAB_RATE_PER_SECOND", default_value_t = confab_server::session::RATE_PER_SECOND)]
    rate_per_second: f64,

    /// Keep rooms in Redis (`redis://host:6379`, `redis+unix:///run/redis.sock`) so that several
    /// confab nodes behind a load balancer serve the same rooms. Without it rooms live in this
    /// process and no Redis is needed.
    #[arg(long, env = "CONFAB_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,

    /// With `--redis-url`: how long, in milliseconds, a node that stopped answering keeps its
    /// members. Its people have this long to reconnect to another node and keep their places;
    /// after it they are announced as left.
    #[arg(long, env = "CONFAB_REDIS_PRESENCE_TTL_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(300..))]
    redis_presence_ttl_ms: u64,

    /// Serve HTTPS with this certificate chain (PEM); needs `--tls-key`.
    #[arg(long, env = "CONFAB_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, env = "CONFAB_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Serve HTTPS with a certificate generated at start for localhost, this machine's name and
    /// addresses (browsers warn about it; for trying the app from a phone on the same network).
    #[arg(long, env = "CONFAB_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    tls_self_signed: bool,

    /// Log filter, e.g. `info` or `confab_server=debug,info`.
    #[arg(long, env = "CONFAB_LOG", default_value = "info")]
    log: String,

    /// Log format: `pretty` for people, `json` for log collectors.
    #[arg(long, env = "CONFAB_LOG_FORMAT", default_value = "pretty", value_parser = ["pretty", "json"])]
    log_format: String,

    /// The folder `cargo leptos build` wrote the site to (holds `pkg/`).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    site_root: String,
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let (min, max) = s.split_once('-').ok_or("expected MIN-MAX, e.g. 49152-65535")?;
    let (min, max): (u16, u16) =
        (min.trim().parse().map_err(|e| format!("{e}"))?, max.trim().parse().map_err(|e| format!("{e}"))?);
    if min == 0 || max < min {
        return Err("expected 0 < MIN <= MAX".into());
    }
    Ok((min, max))
}

fn parse_policy(s: &str) -> Result<IceTransportPolicy, String> {
    match s {
        "all" => Ok(IceTransportPolicy::All),
        "relay" => Ok(IceTransportPolicy::Relay),
        _ => Err("expected `all` or `relay`".into()),
    }
}

/// The default room capacity of a mesh: each browser uploads its camera once per other person.
const MESH_ROOM_CAPACITY: u16 = 6;
/// The default room capacity with the SFU: each browser uploads once, the server forwards.
const SFU_ROOM_CAPACITY: u16 = 50;
/// From how many people a room goes through the SFU by default: two talk peer to peer.
const DEFAULT_SFU_FROM: u16 = 3;

/// The room size from which media goes through the SFU (0: never), from `--sfu-from` (if given)
/// and whether rooms are spread over nodes by Redis, which the SFU cannot serve.
fn sfu_threshold(asked: Option<u16>, redis: bool) -> anyhow::Result<u16> {
    match (asked, redis) {
        (Some(0), _) => Ok(0),
        (Some(_), true) => {
            anyhow::bail!("--sfu-from needs rooms on one node: not with --redis-url (or give --sfu-from 0)")
        }
        (Some(from), false) => Ok(from),
        (None, true) => {
            tracing::info!("with --redis-url every room is a mesh (the SFU serves one node's people)");
            Ok(0)
        }
        (None, false) => Ok(DEFAULT_SFU_FROM),
    }
}

/// The address of the interface this host sends to the internet from: a UDP socket "connected"
/// to a public address (no packet is sent) is given that interface's address by the kernel.
fn outward_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((std::net::Ipv4Addr::new(8, 8, 8, 8), 53)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The `turn` crate logs per datagram (through the log bridge); the embedded server counts
    // and summarises instead, so only the crate's errors are shown unless asked for.
    let filter = match args.log.contains("turn") {
        true => EnvFilter::new(&args.log),
        false => EnvFilter::new(format!("{},turn=error,stun=error", args.log)),
    };
    if args.log_format == "json" {
        tracing_subscriber::fmt().json().with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    let secret = args.turn_secret.filter(|s| !s.is_empty());
    let embedded = match args.turn_embedded {
        None => None,
        Some(listen) => {
            let public_ip = match (args.turn_public_ip, listen.ip()) {
                (Some(ip), _) => ip,
                (None, ip) if !ip.is_unspecified() => ip,
                (None, _) => anyhow::bail!("--turn-embedded on all interfaces needs --turn-public-ip"),
            };
            let secret = secret.clone().unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
            let config = EmbeddedConfig {
                realm: args.turn_realm,
                allow_peers: args.turn_allow_peers,
                quota: Quota {
                    per_user: args.turn_user_quota,
                    per_ip: args.turn_ip_quota,
                    total: args.turn_total_quota,
                },
                max_bps: args.turn_max_bps,
                ..EmbeddedConfig::new(listen, public_ip, args.turn_relay_ports, secret)
            };
            let turn = EmbeddedTurn::start(config.clone()).await?;
            tracing::info!("TURN server listening on udp {}", turn.local_addr());
            Some((Arc::new(turn), config))
        }
    };
    let turn = match (&embedded, args.turn_urls.is_empty(), secret) {
        (Some((turn, config)), no_urls, _) => {
            let port = turn.local_addr().port();
            let urls = if no_urls {
                vec![format!("turn:{}?transport=udp", SocketAddr::new(config.public_ip, port))]
            } else {
                args.turn_urls
            };
            Some(TurnConfig { urls, secret: config.secret.clone(), ttl: Duration::from_secs(args.turn_ttl_secs) })
        }
        (None, true, _) => None,
        (None, false, Some(secret)) => {
            Some(TurnConfig { urls: args.turn_urls, secret, ttl: Duration::from_secs(args.turn_ttl_secs) })
        }
        (None, false, None) => anyhow::bail!("--turn-urls needs --turn-secret (or CONFAB_TURN_SECRET)"),
    };
    if args.ice_transport_policy == IceTransportPolicy::Relay && turn.is_none() {
        anyhow::bail!("--ice-transport-policy relay needs TURN servers (--turn-urls)");
    }
    let origins = match args.allowed_origins.iter().any(|o| !o.trim().is_empty()) {
        true => Origins::List(args.allowed_origins.into_iter().map(|o| o.trim().to_owned()).collect()),
        false => Origins::SameOrigin,
    };

    let sfu = match sfu_threshold(args.sfu_from, args.redis_url.is_some())? {
        0 => None,
        from => {
            let bind = args.media_udp.unwrap_or(SocketAddr::new(args.addr.ip(), 0));
            let public_ip = match (args.media_public_ip, bind.ip()) {
                (Some(ip), _) => Some(ip),
                (None, ip) if !ip.is_unspecified() => None,
                (None, _) => match outward_ip() {
                    Some(ip) => {
                        tracing::info!(
                            "the SFU tells browsers to send media to {ip} (set --media-public-ip to change)"
                        );
                        Some(ip)
                    }
                    None => anyhow::bail!(
                        "media on all interfaces, and this host has no route out to tell its address by: \
                         give --media-public-ip (or --sfu-from 0)"
                    ),
                },
            };
            let config = confab_media::MediaConfig {
                bind,
                public_ip,
                bwe: args.sfu_bwe,
                ..confab_media::MediaConfig::default()
            };
            let media = confab_media::spawn(config).map_err(|e| anyhow::anyhow!("--media-udp {bind}: {e}"))?;
            tracing::info!("SFU for rooms of {from} or more, media on udp {}", media.local_addr());
            Some(confab_server::Sfu { media, from })
        }
    };
    let shutdown = CancellationToken::new();
    let limits = Limits {
        room_capacity: usize::from(args.room_capacity.unwrap_or(match sfu {
            Some(_) => SFU_ROOM_CAPACITY,
            None => MESH_ROOM_CAPACITY,
        })),
        max_rooms: args.max_rooms,
        max_peers: args.max_peers,
        max_places_per_ip: usize::try_from(args.max_places_per_ip).unwrap_or(usize::MAX),
        max_joins_per_ip_per_sec: args.max_joins_per_ip_per_sec,
        passwords: PasswordLimits {
            failures_per_ip: args.password_failures_per_ip,
            ip_window: Duration::from_secs(args.password_failure_window_secs),
            free_failures_per_room: args.password_free_failures_per_room,
            room_max_delay: Duration::from_secs(args.password_max_delay_secs),
            ..PasswordLimits::default()
        },
    };
    let registry = match &args.redis_url {
        None => Registry::Memory(Rooms::with_limits(limits)),
        Some(url) => {
            let config =
                ClusterConfig { url: url.clone(), presence_ttl: Duration::from_millis(args.redis_presence_ttl_ms) };
            let cluster = Cluster::connect(config, limits, shutdown.clone())
                .await
                .map_err(|e| anyhow::anyhow!("--redis-url: {e}"))?;
            Registry::Cluster(cluster)
        }
    };
    let hub = Arc::new(Hub::with_registry(
        HubConfig {
            limits,
            stun_urls: args.stun,
            turn,
            ice_transport_policy: args.ice_transport_policy,
            heartbeat: Duration::from_millis(args.heartbeat_ms),
            resume_grace: Duration::from_millis(args.resume_grace_ms),
            rate: RateLimit { burst: args.rate_burst.max(1.0), per_second: args.rate_per_second.max(0.0) },
            origins,
            max_connections: args.max_connections,
            max_connections_per_ip: args.max_connections_per_ip,
            trusted_proxies: TrustedProxies::new(args.trusted_proxies),
            sessions: TaskTracker::new(),
            sfu,
        },
        registry,
        shutdown.clone(),
    ));
    if let (Some((turn, _)), Some(sfu)) = (&embedded, &hub.sfu) {
        // A browser that only uses TURN reaches the SFU through the relay.
        turn.allow_own_port(sfu.media.local_addr().port());
    }
    if let Some((turn, _)) = &embedded {
        hub.attach_turn(turn.clone());
        tokio::spawn({
            let (turn, shutdown) = (turn.clone(), shutdown.clone());
            async move {
                shutdown.cancelled().await;
                turn.close().await;
            }
        });
    }
    let mut options = LeptosOptions::builder()
        .output_name("confab")
        .site_root(args.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(args.addr)
        .build();
    match confab_server::assets::use_hashed_names(&mut options) {
        Some(hash_file) => tracing::info!("assets with content hashes (from {})", hash_file.display()),
        None => tracing::info!("assets without content hashes (no hash.txt matching the site)"),
    }
    let router = app(hub.clone(), options);

    let listener = confab_server::serve::bind(args.addr)?;
    let local = listener.local_addr()?;
    tokio::spawn(watch_signals(shutdown.clone()));

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |path: &PathBuf| std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
            Some(confab_server::tls::server_config(&read(cert)?, &read(key)?)?)
        }
        _ if args.tls_self_signed => {
            let (cert, key) = confab_server::tls::self_signed(&[local.ip()])?;
            Some(confab_server::tls::server_config(cert.as_bytes(), key.as_bytes())?)
        }
        _ => None,
    };
    let config = ServeConfig {
        header_read_timeout: Duration::from_secs(args.header_timeout_secs),
        idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        max_http_connections: usize::try_from(args.max_http_connections).unwrap_or(usize::MAX),
        ..ServeConfig::default()
    };
    let server = match tls {
        None => {
            tracing::info!("listening on http://{local}");
            Server::new(config)
        }
        Some(tls) => {
            tracing::info!("listening on https://{local}");
            Server::new(config).with_tls(tls)
        }
    };
    hub.attach_http(server.http_connections_gauge());
    server.run(listener, router, shutdown).await;
    // The HTTP server does not wait for upgraded sockets: give each session the moment it needs
    // to send its close frame (1001), so that browsers hear "going away" rather than a dropped
    // connection.
    if !hub.sessions_closed(Duration::from_secs(3)).await {
        tracing::warn!(open = hub.connections(), "sessions still open after 3 s; exiting anyway");
    }
    Ok(())
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM. Sessions see the same token and close their sockets
/// with "going away" (axum does not wait for upgraded connections on its own).
async fn watch_signals(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_of_three_go_through_the_sfu_unless_redis_spreads_them_or_it_is_turned_off() {
        assert_eq!(sfu_threshold(None, false).unwrap(), 3);
        assert_eq!(sfu_threshold(None, true).unwrap(), 0);
        assert_eq!(sfu_threshold(Some(0), true).unwrap(), 0);
        assert_eq!(sfu_threshold(Some(5), false).unwrap(), 5);
        assert!(sfu_threshold(Some(3), true).is_err());
    }

    #[test]
    fn flags_parse_with_and_without_the_sfu_settings() {
        let args = Args::try_parse_from(["confab"]).unwrap();
        assert_eq!((args.sfu_from, args.room_capacity), (None, None));
        let args = Args::try_parse_from(["confab", "--sfu-from", "0", "--room-capacity", "4"]).unwrap();
        assert_eq!((args.sfu_from, args.room_capacity), (Some(0), Some(4)));
        assert!(Args::try_parse_from(["confab", "--room-capacity", "0"]).is_err());
    }
}
