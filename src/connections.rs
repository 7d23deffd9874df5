//! TCP connections the server can cut off itself.
//!
//! socketioxide 0.18 closes a socket's Engine.IO connection only when the
//! whole server closes (`SocketIo::close`); `SocketRef::disconnect` leaves
//! the namespace but keeps the transport open. To ask one client at a time
//! to reconnect elsewhere (a drain spread over a window), the server cuts
//! the TCP connection under it: every accepted stream is wrapped in a
//! [`Severable`], and its [`Sever`] handle rides in the connection info
//! every request of that connection carries ([`Peer`]), which socketioxide
//! keeps in the socket's handshake parts. Cut, the stream fails every read
//! and write at once, so whoever holds it (hyper, tungstenite, engineioxide)
//! drops it and the peer sees the connection close, even if it was not
//! reading.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The listener `axum::serve` runs on: a TCP listener whose streams can be
/// cut.
pub struct Listener {
    inner: TcpListener,
}

impl Listener {
    pub fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl axum::serve::Listener for Listener {
    type Io = Severable<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (Severable::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// What each request knows of its connection (axum's `ConnectInfo<Peer>`).
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub sever: Sever,
}

impl Connected<IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        Self {
            addr: *stream.remote_addr(),
            sever: stream.io().sever.clone(),
        }
    }
}

impl Peer {
    /// The connection a request (or a socket's handshake) came on.
    pub fn of(extensions: &axum::http::Extensions) -> Option<&Peer> {
        extensions
            .get::<axum::extract::ConnectInfo<Peer>>()
            .map(|info| &info.0)
    }
}

/// Cuts one connection. Cheap to clone; all clones cut the same one.
#[derive(Clone, Debug, Default)]
pub struct Sever {
    inner: Arc<SeverInner>,
}

#[derive(Debug, Default)]
struct SeverInner {
    cut: AtomicBool,
    /// Reading and writing may be polled by different tasks (engineioxide
    /// splits a WebSocket), and either may be the one waiting.
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl Sever {
    /// Cuts the connection: every pending and later read or write fails.
    pub fn sever(&self) {
        self.inner.cut.store(true, Ordering::Release);
        self.inner.reader.wake();
        self.inner.writer.wake();
    }

    pub fn is_severed(&self) -> bool {
        self.inner.cut.load(Ordering::Acquire)
    }
}

/// A stream that fails once its [`Sever`] is used.
pub struct Severable<T> {
    io: T,
    sever: Sever,
}

impl<T> Severable<T> {
    pub fn new(io: T) -> Self {
        Self {
            io,
            sever: Sever::default(),
        }
    }

    pub fn sever(&self) -> &Sever {
        &self.sever
    }

    /// Registers `waker` and tells whether the stream is cut; registering
    /// first means a cut between the two steps still wakes the task.
    fn cut(&self, waker: &AtomicWaker, cx: &Context<'_>) -> bool {
        waker.register(cx.waker());
        self.sever.is_severed()
    }
}

fn severed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection cut by the server",
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for Severable<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.cut(&this.sever.inner.reader, cx) {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Severable<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.cut(&this.sever.inner.writer, cx) {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.cut(&this.sever.inner.writer, cx) {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.cut(&this.sever.inner.writer, cx) {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.sever.is_severed() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_cut_wakes_a_pending_read_and_fails_later_writes() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut ours = Severable::new(ours);
        let sever = ours.sever().clone();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            let read = ours.read(&mut buf).await;
            (read.map_err(|e| e.kind()), ours)
        });
        tokio::task::yield_now().await;
        sever.sever();
        let (read, mut ours) = reader.await.expect("the reader task ends");
        assert_eq!(read, Err(io::ErrorKind::ConnectionAborted));
        let write = ours.write_all(b"late").await.map_err(|e| e.kind());
        assert_eq!(write, Err(io::ErrorKind::ConnectionAborted));
        // The other side sees nothing of the refused write.
        drop(ours);
        let mut rest = Vec::new();
        theirs
            .read_to_end(&mut rest)
            .await
            .expect("the other side reads to the end");
        assert!(rest.is_empty());
    }
}
