//! `cargo xtask <task>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `codegen [--check]`: regenerates the provider link list of the facade crate.
//! - `new-provider <id> [--channel email|sms|push] [--name TypeName]`: scaffolds a provider
//!   crate, its fixtures folder, and reruns codegen.
//! - `ci`: what `.ci/run` runs: fmt, clippy, the test suite.

mod codegen;
mod new_provider;
mod tidy;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.first().map(String::as_str) {
        Some("codegen") => codegen::run(rest.contains(&"--check")),
        Some("new-provider") => new_provider::run(&rest),
        Some("ci") => ci(),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 codegen [--check]       regenerate the provider link list\n  \
                 new-provider <id> [--channel email|sms|push] [--name TypeName]\n                          \
                 scaffold a provider crate and its fixtures\n  \
                 ci                      fmt, clippy and the tests, as .ci/run does"
            );
            bail!("unknown or missing task")
        }
    }
}

/// The workspace root.
pub(crate) fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(project_root())
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

fn ci() -> Result<()> {
    codegen::run(true)?;
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace", "--locked"])
}
