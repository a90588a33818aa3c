//! What teiten's servers share. [`http_server`]: the hardened HTTP accept loop the aggregator
//! and the dashboard both run, and its `[server]` config.

pub mod http_server;
