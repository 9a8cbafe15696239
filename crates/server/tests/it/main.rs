//! The `tidings` binary, tested over a real socket.

mod hardening;
