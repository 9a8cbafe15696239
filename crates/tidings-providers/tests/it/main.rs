//! Every provider crate under `crates/providers/` is linked and registers itself, and nothing
//! else registers.

// In tests a panic is the failure report.
#![allow(clippy::expect_used)]

use tidings_core::registry;
use tidings_providers as _;

#[test]
fn every_provider_crate_is_linked_and_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../providers");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("crates/providers exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(
        registry().ids(),
        on_disk,
        "a provider crate is not linked (run `cargo xtask codegen`), registers nothing, or \
         registers under another id than its directory name"
    );
}
