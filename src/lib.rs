//! Harness shared by teiten's end-to-end tests (`tests/`) and benchmarks (`benches/`):
//! helpers that start the real parts (a private ClickHouse server, a network-namespace lab,
//! the project's own binaries) for a test and tear them down afterwards.

pub mod clickhouse;
pub mod lab;
