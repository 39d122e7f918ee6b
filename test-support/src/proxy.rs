//! A TCP proxy in front of ClickHouse that can be paused (bytes dropped) or frozen (bytes held
//! and delivered late), to play a server that is away or frozen without stopping it.

use crate::clickhouse_server::clickhouse_url;
use std::net::SocketAddr;

/// What a [`PausableProxy`] does with the bytes it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProxyState {
    /// Moves them.
    Open,
    /// Drops the connection they came on (a server that went away: nothing arrives late).
    Paused,
    /// Holds them and moves them on thawing (a frozen server: everything arrives late).
    Frozen,
}

/// A TCP proxy on loopback that can be paused or frozen. Put it in front of ClickHouse to make
/// it away or frozen without stopping it.
pub struct PausableProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    state: tokio::sync::watch::Sender<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl PausableProxy {
    /// Forwards connections to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy listens");
        let addr = listener.local_addr().expect("address");
        let (state, watch) = tokio::sync::watch::channel(ProxyState::Open);
        let upstream = upstream.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, watch) = (upstream.clone(), watch.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, watch.clone()),
                        pump(server_read, client_write, watch),
                    );
                });
            }
        });
        Self { addr, state, task }
    }

    /// A proxy in front of the shared ClickHouse of the tests.
    pub async fn in_front_of_clickhouse() -> Self {
        let url = clickhouse_url().await;
        Self::start(url.trim_start_matches("http://")).await
    }

    /// `http://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops moving bytes: a connection that sends anything is dropped.
    pub fn pause(&self) {
        let _ = self.state.send(ProxyState::Paused);
    }

    /// Stops moving bytes but keeps them, to deliver them late on [`Self::resume`].
    pub fn freeze(&self) {
        let _ = self.state.send(ProxyState::Frozen);
    }

    /// Moves bytes again.
    pub fn resume(&self) {
        let _ = self.state.send(ProxyState::Open);
    }
}

impl Drop for PausableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` as the proxy's state says.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: tokio::sync::watch::Receiver<ProxyState>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = match state.wait_for(|s| *s != ProxyState::Frozen).await {
            Ok(now) => *now,
            Err(_) => return,
        };
        if now == ProxyState::Paused || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
