//! `cargo xtask fuzz [--seconds N] [--target NAME]... [--dev]`: builds the one fuzz binary (stable
//! toolchain, `--sanitizer none`), writes the seed corpora from the fixtures, runs each target
//! for N seconds (one target per core at a time) and prints a table of executions, coverage and
//! findings per target.
//! Fails when any target left a crash, timeout or out-of-memory input, naming the files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};

use crate::{build, cargo, codegen, project_root, run_bench_tool};

const USAGE: &str = "usage: cargo xtask fuzz [--seconds N] [--target NAME]... [--dev]";
/// Seconds per target when none are given: a smoke run.
const DEFAULT_SECONDS: u64 = 10;
/// libFuzzer's options besides the time: inputs up to 64 KiB (bodies are small), a hang is an
/// input that takes over 10 s.
const LIBFUZZER_OPTIONS: &[&str] = &[
    "-max_len=65536",
    "-timeout=10",
    "-rss_limit_mb=2048",
    "-print_final_stats=1",
];
/// The fuzz binary that serves every target, and the variable that names a run's target.
const BINARY: &str = "all";
const TARGET_VARIABLE: &str = "TIDINGS_FUZZ_TARGET";
/// Artifact names libFuzzer gives the inputs it found.
const FINDINGS: &[&str] = &["crash-", "timeout-", "oom-", "leak-"];

/// One target's run.
struct Run {
    target: String,
    seconds: f64,
    executions: Option<u64>,
    exec_per_sec: Option<u64>,
    coverage: String,
    corpus: Option<u64>,
    findings: Vec<PathBuf>,
    /// libFuzzer stopped with an error but left no input (the harness itself failed).
    failed: Option<i32>,
}

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let mut seconds = DEFAULT_SECONDS;
    let mut only = Vec::new();
    // Unoptimized: builds in half the time and runs slower, which suits a smoke run of a few
    // seconds per target (CI); long runs want the optimized build.
    let mut dev = false;

    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if *arg == "--dev" {
            dev = true;
            continue;
        }
        match (*arg, rest.next()) {
            ("--seconds", Some(n)) => seconds = n.parse().context(USAGE)?,
            ("--target", Some(name)) => only.push((*name).to_owned()),

            _ => bail!(USAGE),
        }
    }
    let all = codegen::fuzz_targets()?;
    if let Some(unknown) = only.iter().find(|t| !all.contains(t)) {
        bail!("no fuzz target `{unknown}` (targets: {})", all.join(", "));
    }
    let targets = if only.is_empty() { all } else { only };

    // Writing seeds needs no speed: the dev build the test suite made serves.
    let binaries = build("dev", &["tidings-bench"])?;
    let seeds = binaries.join("fuzz-seeds");
    run_bench_tool(
        &binaries,
        &["fuzz-seeds", "--out", &seeds.to_string_lossy()],
    )?;

    let root = project_root();
    let target_dir = root.join("fuzz").join("target");
    let mut build = vec![
        "fuzz",
        "build",
        "--sanitizer",
        "none",
        "--debug-assertions",
        "--target-dir",
    ];
    let target_dir_text = target_dir.to_string_lossy().into_owned();
    build.extend([target_dir_text.as_str(), BINARY]);
    if dev {
        build.push("--dev");
    }
    cargo(&build).context("building the fuzz binary (is cargo-fuzz installed?)")?;
    let profile = if dev { "debug" } else { "release" };
    let binary = target_dir.join(host_triple()?).join(profile).join(BINARY);

    // One target per core at a time: each run is a single process.
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let queue = std::sync::Mutex::new(targets.iter());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let Some(target) = queue.lock().ok().and_then(|mut q| q.next()) else {
                        return;
                    };
                    eprintln!("fuzzing {target} for {seconds} s");
                    let run = fuzz_one(&binary, target, seconds, &seeds.join(target));
                    if let Ok(mut results) = results.lock() {
                        results.push((target.clone(), run));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    // The table in the targets' order, whatever order they finished in.
    results.sort_by_key(|(target, _)| targets.iter().position(|t| t == target));
    let runs = results
        .into_iter()
        .map(|(_, run)| run)
        .collect::<Result<Vec<_>>>()?;
    print_table(&runs);
    let findings: Vec<&PathBuf> = runs.iter().flat_map(|r| &r.findings).collect();
    let failed: Vec<&str> = runs
        .iter()
        .filter(|r| r.failed.is_some())
        .map(|r| r.target.as_str())
        .collect();
    if !findings.is_empty() || !failed.is_empty() {
        for path in &findings {
            eprintln!("finding: {}", path.display());
        }
        for target in &failed {
            eprintln!(
                "failed without an input: {target} (see fuzz/artifacts/{target}/last-run.log)"
            );
        }
        bail!(
            "fuzzing found {} failing input(s); replay one with `{}=<target> fuzz/target/<triple>/release/{BINARY} <file>`",
            findings.len(),
            TARGET_VARIABLE
        );
    }
    Ok(())
}

/// The host's target triple, which `cargo fuzz build` builds for.
fn host_triple() -> Result<String> {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV named no host")
}

fn fuzz_one(binary: &Path, target: &str, seconds: u64, seeds: &Path) -> Result<Run> {
    let root = project_root();
    let corpus = root.join("fuzz").join("corpus").join(target);
    let artifacts = root.join("fuzz").join("artifacts").join(target);
    for dir in [&corpus, &artifacts, &seeds.to_path_buf()] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log_path = artifacts.join("last-run.log");
    let log = std::fs::File::create(&log_path)?;
    let started_at = SystemTime::now();
    let started = Instant::now();
    // New inputs go to the first corpus directory; the seeds stay as generated.
    let status = Command::new(binary)
        .env(TARGET_VARIABLE, target)
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(format!("-max_total_time={seconds}"))
        .args(LIBFUZZER_OPTIONS)
        .arg(&corpus)
        .arg(seeds)
        .current_dir(&root)
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .with_context(|| format!("running {}", binary.display()))?;
    let elapsed = started.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut findings = Vec::new();
    for entry in std::fs::read_dir(&artifacts)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let new = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified >= started_at);
        if new && FINDINGS.iter().any(|prefix| name.starts_with(prefix)) {
            findings.push(entry.path());
        }
    }
    findings.sort();
    let stat = |name: &str| {
        log.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().parse::<u64>().ok())
    };
    // The last status line: `#1234 DONE cov: 567 ft: 890 corp: 12/3456b ...`.
    let status_line = log.lines().rev().find(|line| line.contains(" cov: "));
    let field = |name: &str| {
        status_line.and_then(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == name)?;
            words.next().map(str::to_owned)
        })
    };
    let coverage = match (field("cov:"), field("ft:")) {
        (Some(cov), Some(ft)) => format!("{cov} / {ft}"),
        _ => "-".into(),
    };
    let corpus_size = field("corp:").and_then(|c| c.split('/').next()?.parse().ok());
    let failed = (!status.success() && findings.is_empty()).then(|| status.code().unwrap_or(-1));
    Ok(Run {
        target: target.to_owned(),
        seconds: elapsed,
        executions: stat("stat::number_of_executed_units:"),
        exec_per_sec: stat("stat::average_exec_per_sec:"),
        coverage,
        corpus: corpus_size,
        findings,
        failed,
    })
}

fn print_table(runs: &[Run]) {
    let number = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    println!(
        "{:<28} {:>7} {:>12} {:>8} {:>17} {:>8} {:>9}",
        "target", "seconds", "executions", "exec/s", "cov / features", "corpus", "findings"
    );
    let mut total = 0;
    for run in runs {
        total += run.executions.unwrap_or(0);
        let findings = match run.failed {
            Some(code) => format!("error {code}"),
            None => run.findings.len().to_string(),
        };
        println!(
            "{:<28} {:>7.1} {:>12} {:>8} {:>17} {:>8} {:>9}",
            run.target,
            run.seconds,
            number(run.executions),
            number(run.exec_per_sec),
            run.coverage,
            number(run.corpus),
            findings
        );
    }
    let findings: usize = runs.iter().map(|r| r.findings.len()).sum();
    println!(
        "{} targets, {total} executions, {findings} finding(s)",
        runs.len()
    );
}
