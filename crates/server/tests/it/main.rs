//! End-to-end tests against the real `tidings` binary.

// In tests a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod scale_out;
