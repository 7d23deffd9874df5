//! The wire vocabulary both transports (Socket.IO and plain WebSocket)
//! share: what a relayed event must look like. Each transport parses its
//! own framing, then hands the JSON here, so the rules cannot drift apart.

pub mod relay;
