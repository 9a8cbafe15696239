//! Links every provider crate into the binary that depends on this one.
//!
//! A crate that nothing names is dropped by the linker and registers nothing, so
//! `generated.rs` names each one. `cargo xtask codegen` writes it from the directories under
//! `crates/providers/`, and a tidy test fails when it is out of date.

mod generated;
