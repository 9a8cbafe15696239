//! The Tidings service as a library: the request handler, its configuration and the certificate
//! fetcher. The `tidings` binary adds the listener and the command line; the router fuzz target
//! drives [`app::App::handle`] directly.

// Modules keep `pub` for their interface to the rest of the crate; only some are exported.
#![allow(unreachable_pub)]

mod api;
pub mod app;
pub mod certs;
pub mod config;
mod dashboard;
mod error;
pub mod health;
mod metrics;
pub mod rejections;
mod suppressions;
