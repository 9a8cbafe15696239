//! Seeds for the `providers` fuzz target: every fixture as one input file,
//! `<provider>\n<content type>\n<url>\n<Header: value\n>*\n<body>` (`-` for no content type or
//! no URL, so that the first empty line always ends the head).

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes one seed per fixture into `out`.
pub fn write(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut count = 0;
    for fixture in tidings_fixtures::all() {
        let mut seed = Vec::with_capacity(fixture.body.len() + 256);
        writeln!(seed, "{}", fixture.provider)?;
        writeln!(seed, "{}", fixture.content_type().unwrap_or("-"))?;
        writeln!(seed, "{}", fixture.url().unwrap_or("-"))?;
        for (name, value) in &fixture.headers {
            if let Ok(value) = value.to_str() {
                writeln!(seed, "{name}: {value}")?;
            }
        }
        seed.push(b'\n');
        seed.extend_from_slice(&fixture.body);
        let name = format!("{}-{}", fixture.provider, fixture.name);
        std::fs::write(out.join(name), seed)?;
        count += 1;
    }
    println!("{count} seeds in {}", out.display());
    Ok(())
}
