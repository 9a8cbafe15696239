//! `tidings suppressions`: the suppression list from the command line. `list`, `check` and
//! `export` only read (like `tidings events`); `add`, `remove` and `import` write, so on SQLite
//! they need the store to themselves (a running server owns it: use its HTTP API instead).
//!
//! CSV columns, for `export` and `import`: `recipient,channel,reason,created_at,note`, so a
//! provider's list can be loaded once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use tidings_core::Channel;
use tidings_core::recipient::{PhoneDefaults, normalize, normalize_any};
use tidings_core::suppression::{Kind, Reason};
use tidings_store::{ManualRecord, Store, StoreLock, StoreOptions, SuppressionQuery};

use tidings::config::Config;

/// The CSV header `export` writes and `import` expects.
pub(crate) const CSV_HEADER: &str = "recipient,channel,reason,created_at,note";

#[derive(Subcommand)]
pub(crate) enum Suppressions {
    /// Prints the suppressed recipients as JSON lines.
    List {
        #[command(flatten)]
        target: Target,
        /// Only this reason (complaint, permanentFailure, unsubscribed, manual,
        /// temporaryFailures).
        #[arg(long)]
        reason: Option<String>,
        /// Only this channel (email, sms, push).
        #[arg(long)]
        channel: Option<String>,
    },
    /// Prints a recipient's entry; exits 1 when it is not suppressed.
    Check {
        #[command(flatten)]
        target: Target,
        /// An email address, phone number or push token.
        recipient: String,
    },
    /// Suppresses a recipient by hand.
    Add {
        #[command(flatten)]
        target: Target,
        /// An email address, phone number or push token.
        recipient: String,
        /// manual (default), complaint, permanentFailure or unsubscribed.
        #[arg(long, default_value = "manual")]
        reason: String,
        /// Why.
        #[arg(long)]
        note: Option<String>,
    },
    /// Lifts a recipient's suppression (kept in its history).
    Remove {
        #[command(flatten)]
        target: Target,
        /// An email address, phone number or push token.
        recipient: String,
        /// Why.
        #[arg(long)]
        note: Option<String>,
    },
    /// Writes the list as CSV (recipient,channel,reason,created_at,note).
    Export {
        #[command(flatten)]
        target: Target,
    },
    /// Loads a CSV list (recipient,channel,reason,created_at,note), all rows or none.
    Import {
        #[command(flatten)]
        target: Target,
        /// The CSV file, or `-` for standard input.
        file: PathBuf,
    },
}

/// Which store and environment.
#[derive(clap::Args)]
pub(crate) struct Target {
    /// The configuration file (default: $TIDINGS_CONFIG, else the demo's store).
    #[arg(long, env = "TIDINGS_CONFIG")]
    config: Option<PathBuf>,
    /// The environment.
    #[arg(long, default_value = "dev")]
    environment: String,
}

pub(crate) fn run(command: Suppressions) -> Result<ExitCode> {
    match command {
        Suppressions::List {
            target,
            reason,
            channel,
        } => crate::block_on(async move {
            let store = crate::open_store_to_read(target.config.as_deref()).await?;
            let reason = reason.as_deref().map(parse_reason).transpose()?;
            let channel = channel.as_deref().map(parse_channel).transpose()?;
            let mut out = std::io::stdout().lock();
            for entry in all(&store, &target.environment, reason, channel).await? {
                writeln!(out, "{}", serde_json::to_string(&entry)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }),
        Suppressions::Check { target, recipient } => crate::block_on(async move {
            let phone = phone_defaults(target.config.as_deref());
            let (_, recipient) = normalize_any(&recipient, &phone)
                .ok_or_else(|| anyhow!("`{recipient}` is not a recipient"))?;
            let store = crate::open_store_to_read(target.config.as_deref()).await?;
            match store
                .suppression(&target.environment, &recipient, Utc::now())
                .await?
            {
                Some(entry) => {
                    println!("{}", serde_json::to_string(&entry)?);
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("{recipient} is not suppressed");
                    Ok(ExitCode::from(1))
                }
            }
        }),
        Suppressions::Export { target } => crate::block_on(async move {
            let store = crate::open_store_to_read(target.config.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{CSV_HEADER}")?;
            for entry in all(&store, &target.environment, None, None).await? {
                let created = tidings_core::wire_date::format(&entry.first_at);
                let fields = [
                    entry.recipient.as_str(),
                    entry.channel.as_str(),
                    entry.reason.as_str(),
                    created.as_str(),
                    entry.cause.note.as_deref().unwrap_or(""),
                ];
                writeln!(out, "{}", csv_line(&fields))?;
            }
            Ok(ExitCode::SUCCESS)
        }),
        Suppressions::Add {
            target,
            recipient,
            reason,
            note,
        } => {
            let reason = parse_reason(&reason)?;
            let kind = Kind::for_manual(reason)
                .ok_or_else(|| anyhow!("temporaryFailures comes from failures; use manual"))?;
            let config = crate::load_config(target.config.as_deref())?;
            let phone = config.suppressions.settings().phone;
            let (channel, recipient) = normalize_any(&recipient, &phone)
                .ok_or_else(|| anyhow!("`{recipient}` is not a recipient"))?;
            let record = ManualRecord {
                environment_id: target.environment,
                recipient,
                channel,
                kind,
                at: Utc::now(),
                note,
            };
            write(&config, vec![record])
        }
        Suppressions::Remove {
            target,
            recipient,
            note,
        } => {
            let config = crate::load_config(target.config.as_deref())?;
            let phone = config.suppressions.settings().phone;
            let (channel, recipient) = normalize_any(&recipient, &phone)
                .ok_or_else(|| anyhow!("`{recipient}` is not a recipient"))?;
            let record = ManualRecord {
                environment_id: target.environment,
                recipient,
                channel,
                kind: Kind::Removed,
                at: Utc::now(),
                note,
            };
            write(&config, vec![record])
        }
        Suppressions::Import { target, file } => {
            let config = crate::load_config(target.config.as_deref())?;
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let phone = config.suppressions.settings().phone;
            let records = parse_import(&text, &target.environment, &phone, Utc::now())
                .map_err(|problems| anyhow!("nothing imported:\n{}", problems.join("\n")))?;
            write(&config, records)
        }
    }
}

fn phone_defaults(config: Option<&Path>) -> PhoneDefaults {
    config
        .and_then(|path| Config::load(path).ok())
        .map(|c| c.suppressions.settings().phone)
        .unwrap_or_default()
}

fn parse_reason(name: &str) -> Result<Reason> {
    Reason::from_name(name).ok_or_else(|| {
        anyhow!(
            "`{name}` is not a reason: complaint, permanentFailure, unsubscribed, manual, temporaryFailures"
        )
    })
}

fn parse_channel(name: &str) -> Result<Channel> {
    [Channel::Email, Channel::Sms, Channel::Push, Channel::Chat]
        .into_iter()
        .find(|c| c.as_str() == name)
        .ok_or_else(|| anyhow!("`{name}` is not a channel: email, sms, push"))
}

async fn all(
    store: &Store,
    environment: &str,
    reason: Option<Reason>,
    channel: Option<Channel>,
) -> Result<Vec<tidings_store::Suppression>> {
    let mut out = Vec::new();
    let mut after = None;
    let now = Utc::now();
    loop {
        let page = store
            .suppressions(&SuppressionQuery {
                environment_id: environment.to_owned(),
                after: after.take(),
                limit: 1000,
                reason,
                channel,
                since: None,
                now,
            })
            .await?;
        out.extend(page.data);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(out),
        }
    }
}

/// Writes manual records, with the store to itself on SQLite.
fn write(config: &Config, records: Vec<ManualRecord>) -> Result<ExitCode> {
    let _lock = match config.store.url.strip_prefix("sqlite://") {
        Some(path) => Some(StoreLock::acquire(Path::new(path)).map_err(|err| {
            anyhow!(
                "{err}. A running server owns the store: change the list through its API (PUT or DELETE /v1/environments/<environment>/suppressions/<recipient>), or stop it first."
            )
        })?),
        None => None,
    };
    let count = records.len();
    crate::block_on(async move {
        let options = StoreOptions {
            suppressions: config.suppressions.settings(),
            ..StoreOptions::default()
        };
        let store = Store::open(&config.store.url, options).await?;
        for record in records {
            store.record_suppression(record).await?;
        }
        eprintln!("{count} record(s) written");
        Ok(ExitCode::SUCCESS)
    })
}

/// Reads an import: every row, or the problems of every bad row.
pub(crate) fn parse_import(
    text: &str,
    environment: &str,
    phone: &PhoneDefaults,
    now: DateTime<Utc>,
) -> std::result::Result<Vec<ManualRecord>, Vec<String>> {
    let rows = parse_csv(text).map_err(|e| vec![e])?;
    let mut rows = rows.into_iter().enumerate();
    match rows.next() {
        Some((_, header)) if header.join(",") == CSV_HEADER => {}
        _ => return Err(vec![format!("line 1: the header must be `{CSV_HEADER}`")]),
    }
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for (index, row) in rows {
        let line = index + 1;
        if row.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        match import_row(&row, environment, phone, now) {
            Ok(record) => records.push(record),
            Err(problem) => problems.push(format!("row {line}: {problem}")),
        }
    }
    if problems.is_empty() {
        Ok(records)
    } else {
        Err(problems)
    }
}

fn import_row(
    row: &[String],
    environment: &str,
    phone: &PhoneDefaults,
    now: DateTime<Utc>,
) -> Result<ManualRecord> {
    let [recipient, channel, reason, created_at, note] = row else {
        bail!("expected 5 fields, found {}", row.len());
    };
    let (channel, recipient) = if channel.trim().is_empty() {
        normalize_any(recipient, phone)
    } else {
        let channel = parse_channel(channel.trim())?;
        normalize(channel, recipient, phone).map(|r| (channel, r))
    }
    .ok_or_else(|| anyhow!("`{recipient}` is not a recipient of its channel"))?;
    let reason = if reason.trim().is_empty() {
        Reason::Manual
    } else {
        parse_reason(reason.trim())?
    };
    let kind = Kind::for_manual(reason)
        .ok_or_else(|| anyhow!("temporaryFailures cannot be imported; use manual"))?;
    let at = if created_at.trim().is_empty() {
        now
    } else {
        DateTime::parse_from_rfc3339(created_at.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| anyhow!("created_at `{created_at}` is not an RFC 3339 time"))?
    };
    Ok(ManualRecord {
        environment_id: environment.to_owned(),
        recipient,
        channel,
        kind,
        at,
        note: Some(note.clone()).filter(|n| !n.trim().is_empty()),
    })
}

/// RFC 4180: fields separated by commas, optionally in double quotes (`""` is a quote inside
/// one), records by CRLF or LF.
pub(crate) fn parse_csv(text: &str) -> std::result::Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut line = 1;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                line += 1;
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(format!("line {line}: a quoted field is not closed"));
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// One CSV record; fields with a comma, quote or line break are quoted.
pub(crate) fn csv_line(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                (*f).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trips_quotes_commas_and_line_breaks() {
        let fields = [
            "a@example.com",
            "email",
            "manual",
            "",
            "said \"stop\",\nthen left",
        ];
        let line = csv_line(&fields);
        let rows = parse_csv(&format!("{CSV_HEADER}\r\n{line}\r\n")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], fields);
        assert!(parse_csv("\"open").is_err());
    }

    #[test]
    fn imports_validate_every_row_before_writing_any() {
        let now = Utc::now();
        let phone = PhoneDefaults::from_country_code("44").unwrap();
        let good = format!(
            "{CSV_HEADER}\nJane <Jane@Example.com>,email,complaint,2024-01-02T03:04:05Z,from SES\n07700 900000,sms,,,\n"
        );
        let records = parse_import(&good, "prod", &phone, now).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].recipient, "jane@example.com");
        assert_eq!(records[0].kind, Kind::Complaint);
        assert_eq!(records[0].note.as_deref(), Some("from SES"));
        assert_eq!(records[1].recipient, "+447700900000");
        assert_eq!(records[1].kind, Kind::Manual);
        assert_eq!(records[1].at, now);
        let bad = format!(
            "{CSV_HEADER}\nok@example.com,email,manual,,\nnope,email,manual,,\nx@example.com,email,temporaryFailures,,\ny@example.com,email,manual,yesterday,\n"
        );
        let problems = parse_import(&bad, "prod", &phone, now).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("row 3:"), "{problems:?}");
        assert!(parse_import("a,b\n", "prod", &phone, now).is_err());
    }
}
