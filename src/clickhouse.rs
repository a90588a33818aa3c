//! A private ClickHouse server for tests: own data directory, loopback, a free port.
