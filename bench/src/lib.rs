//! Benchmark suite for Tidings: a Socket.IO load generator, user seeding,
//! server process management, statistics and reports. See `docs/benchmarks.md`.

pub mod delivery;
pub mod doc;
pub mod durable;
pub mod notes;
pub mod report;
pub mod scenarios;
pub mod seed;
pub mod servers;
pub mod sio;
pub mod stats;
