//! The ClickHouse every test of a binary shares (started once with the collector's own
//! `LocalClickHouse`, or `PLUMB_CLICKHOUSE_URL` when set), a fresh database per test, and direct
//! reads of what is stored.

use plumb_collector::testing::{
    LocalClickHouse, PartCompression, ServerBinary, Store, StoreConfig,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;

struct SharedClickHouse {
    url: String,
    _server: Option<LocalClickHouse>,
    _dir: Option<tempfile::TempDir>,
}

static CLICKHOUSE: OnceCell<SharedClickHouse> = OnceCell::const_new();

/// The URL of the ClickHouse server all tests of this binary share.
pub async fn clickhouse_url() -> &'static str {
    let shared = CLICKHOUSE
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("PLUMB_CLICKHOUSE_URL") {
                return SharedClickHouse {
                    url,
                    _server: None,
                    _dir: None,
                };
            }
            let dir = tempfile::tempdir().expect("temp dir for ClickHouse");
            let binary = ServerBinary::find(None)
                .expect("ClickHouse installed (the test command installs it)");
            let server = LocalClickHouse::start(&binary, dir.path(), PartCompression::default())
                .expect("ClickHouse starts");
            let url = server.url().to_owned();
            let store = store_for(&url, "default");
            store
                .wait_ready(Duration::from_secs(60))
                .await
                .expect("ClickHouse answers");
            SharedClickHouse {
                url,
                _server: Some(server),
                _dir: Some(dir),
            }
        })
        .await;
    &shared.url
}

fn store_for(url: &str, database: &str) -> Store {
    Store::new(&StoreConfig {
        url: url.to_owned(),
        user: "default".into(),
        password: String::new(),
        database: database.into(),
    })
    .expect("valid store config")
}

/// A database name no other test uses.
pub fn unique_database(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "it_{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store handle for checking rows directly.
pub async fn store(database: &str) -> Store {
    store_for(clickhouse_url().await, database)
}

/// The single number a query returns (`SELECT count() ...`), from `database`.
pub async fn query_number(database: &str, sql: &str) -> u64 {
    store(database)
        .await
        .client()
        .query(sql)
        .fetch_one::<u64>()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The number a query returns once it is `expected`, or what it returns after 30 s of asking
/// (rows that different writers flush, such as span rows after the latency rows, come apart).
pub async fn wait_for_number(database: &str, sql: &str, expected: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got = query_number(database, sql).await;
        if got == expected || std::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
