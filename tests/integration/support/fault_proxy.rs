//! A TCP proxy on 127.0.0.1 that injects faults between tend and a peer:
//! each chunk forwarded in either direction may be delayed, or may end
//! the connection (both sides closed at once, as a reset or a crashed
//! peer looks to the client). Works for any TCP protocol: HTTP, Redis.
//! No installable fault proxy exists here, so the tests carry this one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Fault rates, each a probability per forwarded chunk.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Chance that a chunk ends the connection instead of being forwarded.
    pub drop: f64,
    /// Chance that a chunk is held back for `latency` first.
    pub delay: f64,
    pub latency: Duration,
}

pub struct FaultProxy {
    pub address: SocketAddr,
    /// Connections ended by an injected fault.
    pub dropped: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().unwrap();
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        pipe(client, server, faults, counter).await;
                    }
                });
            }
        });
        Self {
            address,
            dropped,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards both directions until either side closes or a fault hits.
async fn pipe(client: TcpStream, server: TcpStream, faults: Faults, dropped: Arc<AtomicU64>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = forward(&mut client_read, &mut server_write, faults);
    let downstream = forward(&mut server_read, &mut client_write, faults);
    // Whichever direction ends first ends the connection.
    let faulted = tokio::select! {
        faulted = upstream => faulted,
        faulted = downstream => faulted,
    };
    if faulted {
        dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Copies chunks from `from` to `to`; returns true when a fault ended it.
async fn forward<R, W>(from: &mut R, to: &mut W, faults: Faults) -> bool
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(read) => read,
        };
        if fastrand::f64() < faults.drop {
            return true;
        }
        if fastrand::f64() < faults.delay {
            tokio::time::sleep(faults.latency).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return false;
        }
    }
}

/// Parses `http://host:port` into a socket address.
pub fn address_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("an http://IP:port URL")
}
