//! A private ClickHouse server, started and supervised by Plumb.
//!
//! The collector uses it when no ClickHouse URL is configured, and the test harness uses it to
//! get a server on free loopback ports in a temporary folder. In: a data folder and, optionally,
//! the server binary (otherwise `clickhouse` or `clickhouse-server` is looked up on `PATH`,
//! `/usr/bin` and `/usr/sbin`). Out: an HTTP URL on 127.0.0.1.
//!
//! The server runs under a small `sh` watchdog that reads our end of a pipe: when this process
//! exits for any reason (even `kill -9`), the pipe closes and the watchdog stops ClickHouse, so
//! no server is ever left behind.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How the local server compresses the parts it writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PartCompression {
    /// LZ4, ClickHouse's default: the faster reads.
    #[default]
    Lz4,
    /// zstd: fewer bytes on disk (spans about a sixth smaller), reads slower (the `query` bench's
    /// queries 1.13x to 1.93x).
    Zstd,
}

/// Errors starting the local server.
#[derive(Debug, thiserror::Error)]
pub enum LocalServerError {
    /// No server binary was found.
    #[error(
        "no ClickHouse server found (looked for `clickhouse` and `clickhouse-server` on PATH, /usr/bin and /usr/sbin). \
         Install it (Debian/Ubuntu: `apt-get update && apt-get install -y clickhouse-server`), \
         pass --clickhouse-binary, or point Plumb at a running server with --clickhouse-url / PLUMB_CLICKHOUSE_URL"
    )]
    NotFound,
    /// The data folder or config could not be written, or the process not started.
    #[error("could not start ClickHouse: {0}")]
    Io(#[from] std::io::Error),
    /// The server did not answer in time.
    #[error("ClickHouse did not answer within the start-up timeout; last log lines:\n{log}")]
    Timeout {
        /// Tail of the server's error log.
        log: String,
    },
    /// The server exited during start-up.
    #[error("ClickHouse exited during start-up ({status}); last log lines:\n{log}")]
    Exited {
        /// Exit status.
        status: String,
        /// Tail of the server's error log.
        log: String,
    },
}

/// How to run a ClickHouse server binary.
#[derive(Clone, Debug)]
pub struct ServerBinary {
    path: PathBuf,
    /// `clickhouse` needs the `server` sub-command; `clickhouse-server` does not.
    needs_subcommand: bool,
}

impl ServerBinary {
    /// Uses `explicit` when given, else searches PATH, `/usr/bin` and `/usr/sbin`.
    pub fn find(explicit: Option<&Path>) -> Result<Self, LocalServerError> {
        if let Some(path) = explicit {
            if !path.is_file() {
                return Err(LocalServerError::NotFound);
            }
            let needs_subcommand = path.file_name().is_some_and(|n| n == "clickhouse");
            return Ok(Self {
                path: path.to_owned(),
                needs_subcommand,
            });
        }
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        dirs.extend(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from));
        for dir in &dirs {
            for (name, needs_subcommand) in [("clickhouse", true), ("clickhouse-server", false)] {
                let path = dir.join(name);
                if path.is_file() {
                    return Ok(Self {
                        path,
                        needs_subcommand,
                    });
                }
            }
        }
        Err(LocalServerError::NotFound)
    }
}

/// A running private ClickHouse server; stopped when dropped.
#[derive(Debug)]
pub struct LocalClickHouse {
    url: String,
    http_port: u16,
    data_dir: PathBuf,
    watchdog: Child,
    /// Closing this pipe tells the watchdog to stop the server.
    lifeline: Option<ChildStdin>,
}

impl LocalClickHouse {
    /// Writes a config under `data_dir` and starts the server on free loopback ports, writing
    /// parts with `compression`.
    ///
    /// Returns once the process is started; [`Self::start_ready`] also waits until it answers.
    pub fn start(
        binary: &ServerBinary,
        data_dir: &Path,
        compression: PartCompression,
    ) -> Result<Self, LocalServerError> {
        let data_dir = std::path::absolute(data_dir)?;
        for sub in ["data", "tmp", "user_files", "format_schemas", "log"] {
            fs::create_dir_all(data_dir.join(sub))?;
        }
        let http_port = free_port()?;
        let tcp_port = free_port()?;
        let config = data_dir.join("config.xml");
        fs::write(
            &config,
            server_config(&data_dir, http_port, tcp_port, compression),
        )?;
        fs::write(data_dir.join("users.xml"), USERS_CONFIG)?;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("plumb-clickhouse-watchdog")
            .arg(&binary.path);
        if binary.needs_subcommand {
            command.arg("server");
        }
        command
            .arg(format!("--config-file={}", config.display()))
            .current_dir(&data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(fs::File::create(data_dir.join("log/stderr.log"))?);
        let mut watchdog = command.spawn()?;
        let lifeline = watchdog.stdin.take();
        Ok(Self {
            url: format!("http://127.0.0.1:{http_port}"),
            http_port,
            data_dir,
            watchdog,
            lifeline,
        })
    }

    /// Starts the server and waits until it answers `/ping`, up to `timeout`. A start that fails
    /// because a port was taken in the meantime is retried on new ports.
    pub(crate) async fn start_ready(
        binary: &ServerBinary,
        data_dir: &Path,
        compression: PartCompression,
        timeout: Duration,
    ) -> Result<Self, LocalServerError> {
        let deadline = Instant::now() + timeout;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut server = Self::start(binary, data_dir, compression)?;
            match server.wait_ping(deadline).await {
                Err(LocalServerError::Exited { log, .. })
                    if attempts < 3 && log.contains("Address already in use") =>
                {
                    continue;
                }
                result => return result.map(|()| server),
            }
        }
    }

    async fn wait_ping(&mut self, deadline: Instant) -> Result<(), LocalServerError> {
        loop {
            self.check_running()?;
            if ping(self.http_port).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LocalServerError::Timeout {
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's HTTP URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fails with the server's log tail if it has exited.
    pub(crate) fn check_running(&mut self) -> Result<(), LocalServerError> {
        match self.watchdog.try_wait()? {
            None => Ok(()),
            Some(status) => Err(LocalServerError::Exited {
                status: status.to_string(),
                log: self.log_tail(),
            }),
        }
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        for name in ["log/err.log", "log/stderr.log"] {
            if let Ok(mut f) = fs::File::open(self.data_dir.join(name)) {
                let _ = f.read_to_string(&mut text);
            }
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Stops the server and waits up to `timeout` for it to exit.
    pub fn stop(&mut self, timeout: Duration) {
        self.lifeline.take();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

impl Drop for LocalClickHouse {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(30));
    }
}

/// Runs the server in the background, waits for our pipe to close, then stops it.
const WATCHDOG_SCRIPT: &str = r#""$@" </dev/null &
server=$!
trap 'kill -TERM $server 2>/dev/null' TERM INT HUP
while read -r _; do :; done
kill -TERM $server 2>/dev/null
wait $server"#;

/// Whether ClickHouse's HTTP `/ping` answers `Ok.` on `port`.
async fn ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream
        .write_all(b"GET /ping HTTP/1.0\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut response)).await;
    matches!(read, Ok(Ok(_))) && response.ends_with(b"Ok.\n")
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn server_config(
    dir: &Path,
    http_port: u16,
    tcp_port: u16,
    compression: PartCompression,
) -> String {
    let d = dir.display();
    // LZ4 is the server's own default, so only zstd needs a section.
    let compression = match compression {
        PartCompression::Lz4 => "",
        PartCompression::Zstd => {
            "
    <compression>
        <case>
            <min_part_size>0</min_part_size>
            <min_part_size_ratio>0</min_part_size_ratio>
            <method>zstd</method>
        </case>
    </compression>"
        }
    };
    format!(
        r#"<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{d}/log/clickhouse.log</log>
        <errorlog>{d}/log/err.log</errorlog>
        <size>10M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <path>{d}/data/</path>
    <tmp_path>{d}/tmp/</tmp_path>
    <user_files_path>{d}/user_files/</user_files_path>
    <format_schema_path>{d}/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>{compression}
</yandex>
"#
    )
}

const USERS_CONFIG: &str = r#"<?xml version="1.0"?>
<yandex>
    <profiles><default></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default></default></quotas>
</yandex>
"#;
