//! `cargo xtask new-provider <id>`: the boilerplate of a new provider crate.

use anyhow::{Context, Result, bail};

use crate::{codegen, project_root};

const TEMPLATES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/provider/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/provider/lib.rs.tmpl"),
    ),
    (
        "src/wire.rs",
        include_str!("../templates/provider/wire.rs.tmpl"),
    ),
    (
        "src/status.rs",
        include_str!("../templates/provider/status.rs.tmpl"),
    ),
];

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let Some(id) = args.first().copied().filter(|a| !a.starts_with("--")) else {
        bail!(
            "usage: cargo xtask new-provider <id> [--channel email|sms|push|chat] [--name TypeName]"
        );
    };
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bail!(
            "a provider id is lowercase letters, digits and dashes, as Novu names it (`sendgrid`, `infobip-sms`)"
        );
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| *a == name)
            .and_then(|i| args.get(i + 1))
            .copied()
    };
    let channel = match flag("--channel").unwrap_or("email") {
        "email" => "Email",
        "sms" => "Sms",
        "push" => "Push",
        "chat" => "Chat",
        other => bail!("unknown channel `{other}`"),
    };
    let type_name = flag("--name").map(str::to_owned).unwrap_or_else(|| {
        id.split('-')
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect()
    });
    let root = project_root();
    let crate_dir = root.join("crates/providers").join(id);
    if crate_dir.exists() {
        bail!("{} already exists", crate_dir.display());
    }
    for (path, template) in TEMPLATES {
        let target = crate_dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let text = template
            .replace("{{id}}", id)
            .replace("{{Type}}", &type_name)
            .replace("{{Name}}", &type_name)
            .replace("{{Channel}}", channel);
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    let fixtures = root.join("fixtures").join(id);
    std::fs::create_dir_all(&fixtures)?;
    let readme = fixtures.join("README.md");
    if !readme.exists() {
        std::fs::write(
            &readme,
            format!(
                "# {id} fixtures\n\nReal {type_name} requests, scrubbed of real addresses \
                 (`example.com`). Each body file has a `.meta.json` beside it saying where it came \
                 from (`origin`) and what it must normalize to (`expected`).\n"
            ),
        )?;
    }
    codegen::run(false)?;
    eprintln!(
        "created crates/providers/{id} and fixtures/{id}/.\n\nNext:\n  \
         1. Write wire.rs (the provider's fields) and status.rs (the commented event table).\n  \
         2. Put real requests in fixtures/{id}/ with a .meta.json each (see docs/adding-a-provider.md).\n  \
         3. INSTA_UPDATE=always cargo test -p tidings-fixtures, then read every new .snap.\n  \
         4. cargo clippy --workspace --all-targets -- -D warnings"
    );
    Ok(())
}
