//! Storage: everything Plumb keeps lives in ClickHouse, reached through the `clickhouse` crate
//! over HTTP with RowBinary rows (validation off, which ClickHouse 18.16 needs).
//!
//! In: span, latency and metric rows from the pipeline. Out: rows in the `spans`,
//! `latency_minute` (plus its `latency_hour` rollup) and `metrics` tables, and the client the
//! query API reads with. [`schema`] applies the versioned migrations, [`retention`] drops old
//! daily partitions, [`local_server`] runs a private ClickHouse when no URL is configured.

pub mod local_server;
pub mod retention;
pub mod rowbinary;
pub mod rows;
pub mod schema;
pub mod spool;
pub mod writer;

use clickhouse::{Client, RowOwned, RowWrite};
use std::time::Duration;

/// Errors from talking to ClickHouse.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database name is not a plain identifier.
    #[error(
        "database name {0:?} is invalid: use letters, digits and underscores, not starting with a digit"
    )]
    InvalidDatabase(String),
    /// ClickHouse answered with an error or could not be reached.
    #[error("ClickHouse {what} failed: {source}")]
    ClickHouse {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: clickhouse::error::Error,
    },
    /// ClickHouse did not answer in time.
    #[error("ClickHouse at {url} did not answer within {waited:?}: {last_error}")]
    NotReady {
        /// Server URL.
        url: String,
        /// How long we waited.
        waited: Duration,
        /// The last error seen.
        last_error: String,
    },
}

impl StoreError {
    pub(crate) fn clickhouse(
        what: impl Into<String>,
    ) -> impl FnOnce(clickhouse::error::Error) -> Self {
        let what = what.into();
        move |source| Self::ClickHouse { what, source }
    }
}

/// Where ClickHouse is and how to log in.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// HTTP URL, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// User name.
    pub user: String,
    /// Password (never logged).
    pub password: String,
    /// Database holding Plumb's tables.
    pub database: String,
}

/// A handle on Plumb's ClickHouse database.
#[derive(Clone)]
pub struct Store {
    /// Client bound to Plumb's database.
    client: Client,
    /// Client with no database, for creating it.
    server: Client,
    /// The server URL without credentials, for messages.
    url: String,
    database: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// Whether `name` is a plain SQL identifier (safe to place in DDL text).
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// The URL with any `user:password@` part replaced, for logs and error messages.
pub fn redact_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// A store for `config`; nothing is contacted yet.
    pub fn new(config: &StoreConfig) -> Result<Self, StoreError> {
        if !is_identifier(&config.database) {
            return Err(StoreError::InvalidDatabase(config.database.clone()));
        }
        let server = Client::default()
            .with_url(&config.url)
            .with_user(&config.user)
            .with_password(&config.password)
            .with_validation(false);
        let client = server.clone().with_database(&config.database);
        Ok(Self {
            client,
            server,
            url: redact_credentials(&config.url),
            database: config.database.clone(),
        })
    }

    /// The client bound to Plumb's database, for queries.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Whether the server answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.server
            .query("SELECT 1")
            .execute()
            .await
            .map_err(StoreError::clickhouse("ping"))
    }

    /// Waits until the server answers, up to `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), StoreError> {
        let start = tokio::time::Instant::now();
        loop {
            match self.ping().await {
                Ok(()) => return Ok(()),
                Err(e) if start.elapsed() >= timeout => {
                    return Err(StoreError::NotReady {
                        url: self.url.clone(),
                        waited: timeout,
                        last_error: e.to_string(),
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Inserts typed rows into `table` in one `INSERT`.
    pub async fn insert<'a, T>(
        &self,
        table: &str,
        rows: impl IntoIterator<Item = &'a T>,
    ) -> Result<(), StoreError>
    where
        T: RowOwned + RowWrite,
    {
        let what = || format!("insert into {table}");
        let mut insert = self
            .client
            .insert::<T>(table)
            .await
            .map_err(StoreError::clickhouse(what()))?;
        for row in rows {
            insert
                .write(row)
                .await
                .map_err(StoreError::clickhouse(what()))?;
        }
        insert.end().await.map_err(StoreError::clickhouse(what()))
    }

    /// Inserts rows already encoded as RowBinary into `table` in one `INSERT`.
    ///
    /// `columns` is a constant column list of Plumb's own schema, never user input.
    pub async fn insert_encoded(
        &self,
        table: &str,
        columns: &str,
        chunks: impl IntoIterator<Item = bytes::Bytes>,
    ) -> Result<(), StoreError> {
        let what = || format!("insert into {table}");
        let mut insert = self
            .client
            .insert_formatted_with(format!("INSERT INTO {table} ({columns}) FORMAT RowBinary"));
        for chunk in chunks {
            insert
                .send(chunk)
                .await
                .map_err(StoreError::clickhouse(what()))?;
        }
        insert.end().await.map_err(StoreError::clickhouse(what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(
            redact_credentials("http://bob:s3cret@ch:8123"),
            "http://***@ch:8123"
        );
        assert_eq!(redact_credentials("http://ch:8123"), "http://ch:8123");
        assert!(!is_identifier("plumb; DROP TABLE x"));
        assert!(is_identifier("plumb_2"));
    }
}
