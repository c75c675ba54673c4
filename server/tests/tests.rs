//! The server's integration tests, one module per subject, compiled into one test binary (one
//! link for all of them; `autotests = false` in Cargo.toml). `common` is what they share, and
//! the only place that names the registry's and the session's internals. The churn leak check
//! is `churn.rs`, a binary of its own: it reads the process's resident set.

mod common;

mod assets;
mod cluster;
mod drift;
mod http;
mod registry_model;
mod security;
mod sfu;
mod signaling;
mod turn;
