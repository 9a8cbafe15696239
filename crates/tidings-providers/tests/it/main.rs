//! Every provider crate under `crates/providers/` is linked and registers itself, and nothing
//! else registers.

// In tests a panic is the failure report.
#![allow(clippy::expect_used)]

use tidings_providers::{LINKED, registry};

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
        LINKED, on_disk,
        "the facade's link list is out of date: run `cargo xtask codegen`"
    );
    assert_eq!(
        registry().ids(),
        on_disk,
        "a provider crate is linked but registers nothing, or registers under another id \
         than its directory name"
    );
}
