//! The HTTP server both teiten servers run (the aggregator and the dashboard, which depends on
//! this crate): an accept loop with a connection limit, hyper's header-read timeout, a request
//! timeout and a limit on requests handled at once, and graceful shutdown.
//!
//! Slow and abusive clients are bounded: a connection that does not send a complete request
//! head within `header_read_timeout_ms` (from connect, or from the previous response on a
//! kept-alive connection) is closed; a request that takes longer than `request_timeout_secs`
//! (body included) gets 408; above `max_requests` requests in progress new ones get 503 at
//! once (`/health` is exempt, so that it keeps answering); above `max_connections` open
//! connections the server stops accepting until one closes.
//!
//! Handlers see the client's address as the request extension
//! `axum::extract::ConnectInfo<SocketAddr>`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// `[server]`: limits on connections and requests (the same section in the aggregator's and
/// the dashboard's config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Most TCP connections open at once; at the limit the server stops accepting (new clients
    /// wait in the kernel's backlog) until one closes. Keep it well below the file descriptor
    /// limit (`LimitNOFILE=` in the systemd unit). 1 to 1,000,000. Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Milliseconds a client has to send a request's line and headers, counted from the
    /// connect or from the previous response on a kept-alive connection (so it is also the
    /// idle timeout); then the connection is closed. 100 to 600,000. Default 5000.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_ms: u64,
    /// Seconds a request may take from its headers to the end of its response, reading the
    /// body included; then it is answered 408. 1 to 3600. Default 60.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Most requests being handled at once; above it new ones are answered 503 with
    /// `Retry-After: 1` at once. `/health` is exempt. 1 to 1,000,000. Default 256.
    #[serde(default = "default_max_requests")]
    pub max_requests: usize,
}

fn default_max_connections() -> usize {
    1024
}
fn default_header_read_timeout() -> u64 {
    5000
}
fn default_request_timeout() -> u64 {
    60
}
fn default_max_requests() -> usize {
    256
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: default_max_connections(),
            header_read_timeout_ms: default_header_read_timeout(),
            request_timeout_secs: default_request_timeout(),
            max_requests: default_max_requests(),
        }
    }
}

impl ServerConfig {
    /// Checks the ranges; on error, the offending field (`server.…`) and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err((
                "server.max_connections",
                format!("{} is not between 1 and 1000000", self.max_connections),
            ));
        }
        if !(100..=600_000).contains(&self.header_read_timeout_ms) {
            return Err((
                "server.header_read_timeout_ms",
                format!(
                    "{} is not between 100 and 600000",
                    self.header_read_timeout_ms
                ),
            ));
        }
        if !(1..=3600).contains(&self.request_timeout_secs) {
            return Err((
                "server.request_timeout_secs",
                format!("{} is not between 1 and 3600", self.request_timeout_secs),
            ));
        }
        if !(1..=1_000_000).contains(&self.max_requests) {
            return Err((
                "server.max_requests",
                format!("{} is not between 1 and 1000000", self.max_requests),
            ));
        }
        Ok(())
    }
}

/// The router with the request timeout and the limit on requests in progress.
fn harden(app: Router, cfg: &ServerConfig) -> Router {
    let in_progress = Arc::new(Semaphore::new(cfg.max_requests));
    app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(cfg.request_timeout_secs),
    ))
    .layer(axum::middleware::from_fn_with_state(
        in_progress,
        limit_requests,
    ))
}

async fn limit_requests(State(slots): State<Arc<Semaphore>>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let Ok(_permit) = slots.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "too many requests in progress; retry later\n",
        )
            .into_response();
    };
    next.run(req).await
}

/// Connections the kernel may hold completed but not yet accepted (the listen backlog; Linux
/// caps it at `net.core.somaxconn`, 4096 by default). Tokio's `TcpListener::bind` asks for
/// 128 on this kernel, and 300 slowloris connections the header timeout cuts at once and that
/// reconnect together overflowed that: the kernel then drops SYNs, and an honest client
/// waits a second for its SYN to be sent again (seen as a 1.02 s connect in `tests/abuse.rs`).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listening socket on `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, so that a
/// restart is not refused while old connections sit in TIME_WAIT).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `app` on `listener` with the limits of `cfg` until `shutdown` completes, then stops
/// accepting and waits for the open connections to finish their requests (idle ones are
/// closed at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    cfg: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let app = harden(app, cfg);
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(cfg.header_read_timeout_ms));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "Connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// An error of `accept`: per-connection ones are skipped; others (out of file descriptors)
/// are logged and the loop pauses briefly instead of spinning.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "Accepting a connection failed; pausing 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The client address a request came from, when it came through [`serve`].
pub fn peer(req: &axum::http::Extensions) -> Option<SocketAddr> {
    req.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn defaults_and_ranges() {
        let d: ServerConfig = toml::from_str("").unwrap();
        assert_eq!(d, ServerConfig::default());
        assert!(d.check().is_ok());
        for (text, field) in [
            ("max_connections = 0", "server.max_connections"),
            (
                "header_read_timeout_ms = 10",
                "server.header_read_timeout_ms",
            ),
            ("request_timeout_secs = 0", "server.request_timeout_secs"),
            ("max_requests = 0", "server.max_requests"),
        ] {
            let c: ServerConfig = toml::from_str(text).unwrap();
            assert_eq!(c.check().unwrap_err().0, field, "{text}");
        }
    }

    /// 1,000 clients connecting at once to a server that is busy (it accepts none) all get
    /// their handshake done by the kernel at once; with tokio's default backlog of 128 the
    /// 130th SYN was dropped and its client waited a second for the retransmit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_backlog_holds_a_burst_of_connects() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let slow = tokio::task::spawn_blocking(move || {
            let mut open = Vec::new();
            let mut slow = 0;
            for _ in 0..1000 {
                let t = std::time::Instant::now();
                let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(900));
                if s.is_err() || t.elapsed() > Duration::from_millis(500) {
                    slow += 1;
                    break;
                }
                open.extend(s.ok());
            }
            slow
        })
        .await
        .unwrap();
        assert_eq!(slow, 0, "connects that waited for a SYN retransmit");
        drop(listener);
    }

    async fn start(cfg: ServerConfig) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let app = Router::new()
            .route("/health", axum::routing::get(|| async { "ok" }))
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    "late"
                }),
            )
            .route(
                "/peer",
                axum::routing::get(|req: Request| async move {
                    peer(req.extensions())
                        .map(|p| p.ip().to_string())
                        .unwrap_or_default()
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            serve(listener, app, &cfg, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        (addr, tx)
    }

    /// A blocking GET; the status line and body.
    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stalled_headers_are_cut_and_limits_hold() {
        let cfg = ServerConfig {
            max_connections: 64,
            header_read_timeout_ms: 300,
            request_timeout_secs: 1,
            max_requests: 1,
        };
        let (addr, stop) = start(cfg).await;
        tokio::task::spawn_blocking(move || {
            // A partial request line: closed after the header-read timeout.
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /health HT").unwrap();
            let t = std::time::Instant::now();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            let waited = t.elapsed();
            assert!(
                waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
                "{waited:?}"
            );
            // The handler's address is the client's.
            assert!(get(addr, "/peer").ends_with("127.0.0.1"));
            // A request slower than the request timeout: 408.
            assert!(get(addr, "/slow").starts_with("HTTP/1.1 408"));
            // One request at a time: a second one during a slow one is 503, /health is not.
            let slow = std::thread::spawn(move || get(addr, "/slow"));
            std::thread::sleep(Duration::from_millis(200));
            let busy = get(addr, "/peer");
            assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
            assert!(busy.contains("retry-after: 1"), "{busy}");
            assert!(get(addr, "/health").starts_with("HTTP/1.1 200"));
            assert!(slow.join().unwrap().starts_with("HTTP/1.1 408"));
        })
        .await
        .unwrap();
        let _ = stop.send(());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connection_limit_holds_new_clients_back() {
        let cfg = ServerConfig {
            max_connections: 2,
            header_read_timeout_ms: 800,
            ..ServerConfig::default()
        };
        let (addr, stop) = start(cfg).await;
        tokio::task::spawn_blocking(move || {
            // Two silent connections take both slots: a third client is served only once the
            // header-read timeout closes them.
            let _a = std::net::TcpStream::connect(addr).unwrap();
            let _b = std::net::TcpStream::connect(addr).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            let t = std::time::Instant::now();
            assert!(get(addr, "/health").starts_with("HTTP/1.1 200"));
            let waited = t.elapsed();
            assert!(waited >= Duration::from_millis(500), "{waited:?}");
        })
        .await
        .unwrap();
        let _ = stop.send(());
    }
}
