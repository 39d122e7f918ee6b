//! Plumb's shared test harness, one module per job: [`clickhouse_server`] (one real ClickHouse per test
//! binary, a fresh database per test), [`collector`] (real `plumb-collector` processes on free
//! loopback ports), [`sdk`] and [`traces`] (spans and whole traces sent with the official
//! OpenTelemetry SDK exporters), [`proxy`] (a ClickHouse that is away or frozen), [`pki`]
//! (certificates made at test time), [`stats`] (exact figures to compare with), and the
//! targets and receivers alerting tests talk to: [`dns_server`] and [`smtp_server`]; and
//! [`browser`], Debian's Chromium run headless. Everything is
//! re-exported at the top, so a test writes `use plumb_test_support::*`.

pub mod browser;
pub mod clickhouse_server;
pub mod collector;
pub mod dns_server;
pub mod pki;
pub mod proxy;
pub mod sdk;
pub mod smtp_server;
pub mod stats;
pub mod traces;

pub use clickhouse_server::*;
pub use collector::*;
pub use dns_server::*;
pub use pki::*;
pub use proxy::*;
pub use sdk::*;
pub use smtp_server::*;
pub use stats::*;
pub use traces::*;

/// The path of one of the workspace's binaries, next to the running test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`). `cargo test --workspace` builds
/// them before running any test.
pub fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}
