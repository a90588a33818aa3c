//! teiten-dashboard (work in progress).
