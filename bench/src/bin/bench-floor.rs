//! The floor: the least a WebSocket broadcast server can do. tokio +
//! tungstenite, no Socket.IO framing, no authentication, no rooms. A client
//! that sends a text frame starting with `!` has the rest of the frame built
//! once into a message and sent to every other connected client. Other
//! frames are ignored. Messages that are waiting together are written with
//! one flush, as engineioxide does. Listens on `FLOOR_LISTEN` (default
//! 127.0.0.1:4000).

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen: SocketAddr = std::env::var("FLOOR_LISTEN")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4000)));
    let listener = TcpListener::bind(listen).await?;
    eprintln!("bench-floor listening on {listen}");
    // Large enough that a fast burst of broadcasts is not lagged away.
    let (tx, _) = broadcast::channel::<(u64, Message)>(4096);
    let mut next_id = 0u64;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        let tx = tx.clone();
        let mut rx = tx.subscribe();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            loop {
                tokio::select! {
                    frame = stream.next() => match frame {
                        Some(Ok(Message::Text(text))) => {
                            if let Some(body) = text.as_str().strip_prefix('!') {
                                let _ = tx.send((id, Message::text(body.to_owned())));
                            }
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => {}
                    },
                    msg = rx.recv() => match msg {
                        Ok((from, msg)) => {
                            // Write every message already waiting, then flush
                            // once: one syscall per burst, not per message.
                            let mut next = Some((from, msg));
                            let mut failed = false;
                            while let Some((from, msg)) = next.take() {
                                if from != id && sink.feed(msg).await.is_err() {
                                    failed = true;
                                    break;
                                }
                                next = rx.try_recv().ok();
                            }
                            if failed || sink.flush().await.is_err() { break; }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => eprintln!("client {id} lagged {n}"),
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                }
            }
        });
    }
}
