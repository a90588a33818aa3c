//! teiten-iodef (work in progress).
