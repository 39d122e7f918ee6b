//! Storage: everything Plumb keeps lives in ClickHouse, reached through the `clickhouse` crate
//! over HTTP with RowBinary rows (validation off, which ClickHouse 18.16 needs).
//!
//! In: span, latency, breakdown and metric rows from the pipeline and the aggregators. Out: rows
//! in the tables [`schema`] names and creates, and the client the query API reads with.
//! [`write`] holds the writers (batching, the write policy, the disk [`spool`] for what
//! ClickHouse does not take), [`rows`], [`metric_rows`] and [`rowbinary`] the row formats,
//! [`lookup`] the check whether a batch's rows are stored already, [`retention`] drops old
//! daily partitions, [`local_server`] runs a private ClickHouse when no URL is configured.

pub(crate) mod local_server;
pub(crate) mod lookup;
pub(crate) mod metric_rows;
pub(crate) mod retention;
pub(crate) mod rowbinary;
pub(crate) mod rows;
pub(crate) mod schema;
pub(crate) mod spool;
pub(crate) mod write;

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
    /// A write did not finish within its limit (`--write-timeout`).
    #[error("ClickHouse did not finish the write into {table} within {limit:?}")]
    Timeout {
        /// The table written to.
        table: &'static str,
        /// The limit.
        limit: Duration,
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

/// ClickHouse error codes that mean the data itself is wrong (it does not parse, has the wrong
/// types, or is cut short), so sending it again can never succeed: 6 CANNOT_PARSE_TEXT, 26
/// CANNOT_PARSE_QUOTED_STRING, 27 CANNOT_PARSE_INPUT_ASSERTION_FAILED, 32
/// ATTEMPT_TO_READ_AFTER_EOF, 33 CANNOT_READ_ALL_DATA, 38 CANNOT_PARSE_DATE, 41
/// CANNOT_PARSE_DATETIME, 53 TYPE_MISMATCH, 69 ARGUMENT_OUT_OF_BOUND, 70 CANNOT_CONVERT_TYPE, 72
/// CANNOT_PARSE_NUMBER, 117 INCORRECT_DATA, 130 CANNOT_READ_ARRAY_FROM_TEXT, 131
/// TOO_LARGE_STRING_SIZE. Everything else (the server down, busy, out of memory, too many parts,
/// a table missing while migrations run) is worth retrying.
const PERMANENT_CODES: &[u32] = &[6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 130, 131];

/// Whether an error should be retried or the data set aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// The server or the network failed; the same data may be taken later.
    Retriable,
    /// ClickHouse refuses the data itself; it will never take it.
    Permanent,
}

/// The code in a ClickHouse exception text (`Code: 27. DB::Exception: ...`).
fn exception_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + "Code: ".len()..];
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

impl StoreError {
    /// Whether this error means the data will never be taken.
    pub(crate) fn class(&self) -> ErrorClass {
        use clickhouse::error::Error;
        match self {
            Self::ClickHouse { source, .. } => match source {
                Error::BadResponse(text)
                    if exception_code(text).is_some_and(|c| PERMANENT_CODES.contains(&c)) =>
                {
                    ErrorClass::Permanent
                }
                Error::DataFormat(_) | Error::Custom(_) | Error::SequenceMustHaveLength => {
                    ErrorClass::Permanent
                }
                _ => ErrorClass::Retriable,
            },
            Self::InvalidDatabase(_) | Self::Timeout { .. } | Self::NotReady { .. } => {
                ErrorClass::Retriable
            }
        }
    }

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
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// The URL with any `user:password@` part replaced, for logs and error messages.
pub(crate) fn redact_credentials(url: &str) -> String {
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

    /// A store on a port nothing listens on, for tests that only build queries to read their
    /// SQL.
    #[cfg(test)]
    pub(crate) fn unreachable() -> Self {
        let config = StoreConfig {
            url: "http://127.0.0.1:1".into(),
            user: "default".into(),
            password: String::new(),
            database: "default".into(),
        };
        match Self::new(&config) {
            Ok(store) => store,
            Err(e) => unreachable!("`default` is a valid database name: {e}"),
        }
    }

    /// The client bound to Plumb's database, for queries.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The database name.
    pub(crate) fn database(&self) -> &str {
        &self.database
    }

    /// Whether the server answers a trivial query.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
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
    pub(crate) async fn insert_encoded(
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

    #[test]
    fn errors_about_the_data_are_permanent_and_the_rest_retriable() {
        let response = |text: &str| StoreError::ClickHouse {
            what: "insert into spans".into(),
            source: clickhouse::error::Error::BadResponse(text.into()),
        };
        let parse =
            "Code: 33, e.displayText() = DB::Exception: Cannot read all data. Bytes read: 3";
        assert_eq!(response(parse).class(), ErrorClass::Permanent);
        let newer = "Code: 27. DB::Exception: Cannot parse input: expected '\\t'. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)";
        assert_eq!(response(newer).class(), ErrorClass::Permanent);
        let busy = "Code: 252. DB::Exception: Too many parts (300).";
        assert_eq!(response(busy).class(), ErrorClass::Retriable);
        assert_eq!(response("502 Bad Gateway").class(), ErrorClass::Retriable);
        let timeout = StoreError::Timeout {
            table: "spans",
            limit: Duration::from_secs(1),
        };
        assert_eq!(timeout.class(), ErrorClass::Retriable);
        assert!(timeout.to_string().contains("within 1s"), "{timeout}");
    }
}
