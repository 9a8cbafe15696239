//! Repository hygiene, checked by `cargo test` like everything else.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::{codegen, project_root};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !matches!(name, "target" | "templates" | ".git") {
                    rust_files(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn generated_files_are_up_to_date() {
        codegen::run(true).unwrap();
    }

    /// `cargo xtask fuzz` and the fuzz binary name the same fixed targets.
    #[test]
    fn fuzz_targets_agree_with_the_fuzz_crate() {
        let lib = std::fs::read_to_string(project_root().join("fuzz/src/lib.rs")).unwrap();
        let fixed = codegen::fuzz_targets()
            .unwrap()
            .into_iter()
            .filter(|t| !t.starts_with("provider_"))
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(
            lib.contains(&format!("pub const FIXED_TARGETS: &[&str] = &[{fixed}];")),
            "fuzz/src/lib.rs FIXED_TARGETS must list {fixed}, as xtask/src/codegen.rs does"
        );
    }

    #[test]
    fn provider_ids_match_crate_names_and_fixture_folders() {
        let root = project_root();
        for id in codegen::provider_ids().unwrap() {
            let manifest =
                std::fs::read_to_string(root.join("crates/providers").join(&id).join("Cargo.toml"))
                    .unwrap();
            assert!(
                manifest.contains(&format!("name = \"{}\"", codegen::crate_name(&id))),
                "crates/providers/{id}: the package must be named {}",
                codegen::crate_name(&id)
            );
            assert!(
                root.join("fixtures").join(&id).is_dir(),
                "crates/providers/{id} has no fixtures/{id}/ folder"
            );
            for file in ["lib.rs", "wire.rs", "status.rs"] {
                assert!(
                    root.join("crates/providers")
                        .join(&id)
                        .join("src")
                        .join(file)
                        .is_file(),
                    "crates/providers/{id}/src/{file} is missing: every provider has lib.rs, wire.rs and status.rs"
                );
            }
            let lib =
                std::fs::read_to_string(root.join("crates/providers").join(&id).join("src/lib.rs"))
                    .unwrap();
            assert!(
                lib.contains("https://"),
                "crates/providers/{id}/src/lib.rs must link the provider's webhook docs"
            );
        }
    }

    #[test]
    fn every_source_file_starts_with_a_module_doc() {
        let root = project_root();
        let mut files = Vec::new();
        for dir in ["crates", "xtask/src", "fixtures/src"] {
            rust_files(&root.join(dir), &mut files);
        }
        let missing: Vec<_> = files
            .iter()
            .filter(|path| !path.components().any(|c| c.as_os_str() == "tests"))
            .filter(|path| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                !text.trim_start().starts_with("//!")
            })
            .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "files without a `//!` module doc:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn no_trailing_whitespace_in_sources() {
        let root = project_root();
        let mut files = Vec::new();
        for dir in ["crates", "xtask", "fixtures"] {
            rust_files(&root.join(dir), &mut files);
        }
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (n, line) in text.lines().enumerate() {
                assert!(
                    !line.ends_with(' ') && !line.ends_with('\t'),
                    "{}:{}: trailing whitespace",
                    path.display(),
                    n + 1
                );
            }
        }
    }
}
