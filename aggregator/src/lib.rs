//! teiten-aggregator (work in progress).
