//! `cargo xtask <task>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `codegen [--check]`: regenerates the provider link list of the facade crate.
//! - `new-provider <id> [--channel email|sms|push] [--name TypeName]`: scaffolds a provider
//!   crate, its fixtures folder, and reruns codegen.
//! - `ci`: what `.ci/run` runs: fmt, clippy, the test suite.
//! - `bench [parse|e2e] [options]`: builds `tidings` and `tidings-bench` in release and runs
//!   the parse and end-to-end benchmarks (options are passed to `tidings-bench`).
//! - `crash-test [--profile dev|release] [--cycles N] [--outbound] [options]`: kill -9 under
//!   load, restart, check nothing acknowledged is lost or stored twice (`--outbound`: and that
//!   every acknowledged event reached a local webhook receiver at least once). CI uses the dev
//!   profile, which the test suite has already built.
//! - `fuzz [--seconds N] [--target NAME]...`: runs every cargo-fuzz target (stable toolchain,
//!   `--sanitizer none`) for N seconds, seeded from the fixtures, and prints what each found.
//!   Needs `cargo install cargo-fuzz`.

mod codegen;
mod fuzz;
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
        Some("bench") => bench(&rest),
        Some("crash-test") => crash_test(&rest),
        Some("fuzz") => fuzz::run(&rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 codegen [--check]       regenerate the provider link list\n  \
                 new-provider <id> [--channel email|sms|push] [--name TypeName]\n                          \
                 scaffold a provider crate and its fixtures\n  \
                 ci                      fmt, clippy and the tests, as .ci/run does\n  \
                 bench [parse|e2e] [--seconds S] [--connections N] ...\n                          \
                 parse and end-to-end benchmarks (release)\n  \
                 crash-test [--profile dev|release] [--cycles N] [--outbound]\n                          \
                 kill -9 under load, then check the store (and outbound delivery)\n  \
                 fuzz [--seconds N] [--target NAME]\n                          \
                 run every fuzz target for N seconds (default 10)"
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

/// Builds `packages` in release; returns the target directory.
fn build_release(packages: &[&str]) -> Result<PathBuf> {
    build("release", packages)
}

/// Builds `packages` with `profile` (`dev` or `release`); returns where the binaries are.
///
/// The dev build is the one `cargo test --workspace` makes: built with its test targets, so
/// that the dependencies' features (dev-dependencies included) are the same and nothing is
/// compiled again.
fn build(profile: &str, packages: &[&str]) -> Result<PathBuf> {
    let (args, dir) = match profile {
        "release" => {
            let mut args = vec!["build", "--release"];
            for package in packages {
                args.extend(["-p", package]);
            }
            (args, "release")
        }
        "dev" => (vec!["build", "--workspace", "--bins", "--tests"], "debug"),
        other => bail!("unknown profile `{other}` (dev or release)"),
    };
    cargo(&args)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    Ok(target.join(dir))
}

fn run_bench_tool(binaries: &std::path::Path, args: &[&str]) -> Result<()> {
    let tool = binaries.join("tidings-bench");
    eprintln!("$ {} {}", tool.display(), args.join(" "));
    let status = Command::new(&tool)
        .args(args)
        .current_dir(project_root())
        .status()
        .with_context(|| format!("running {}", tool.display()))?;
    if !status.success() {
        bail!("tidings-bench {} failed", args.first().unwrap_or(&""));
    }
    Ok(())
}

fn bench(args: &[&str]) -> Result<()> {
    let release = build_release(&["tidings", "tidings-bench"])?;
    let server = release.join("tidings");
    let server = server.to_string_lossy();
    let (modes, options): (Vec<&str>, &[&str]) = match args.first() {
        Some(&mode) if mode == "parse" || mode == "e2e" => {
            (vec![mode], args.get(1..).unwrap_or_default())
        }
        _ => (vec!["parse", "e2e"], args),
    };
    for mode in modes {
        let mut full = vec![mode];
        if mode == "e2e" {
            full.extend(["--server", &server]);
        }
        full.extend(options.iter().copied());
        run_bench_tool(&release, &full)?;
    }
    Ok(())
}

fn crash_test(args: &[&str]) -> Result<()> {
    let (profile, args) = match args {
        ["--profile", profile, rest @ ..] => (*profile, rest),
        _ => ("release", args),
    };
    let binaries = build(profile, &["tidings", "tidings-bench"])?;
    let server = binaries.join("tidings");
    let server = server.to_string_lossy();
    let mut full = vec!["crash", "--server", &server, "--connections", "16"];
    full.extend(args.iter().copied());
    run_bench_tool(&binaries, &full)
}
