//! What a newcomer meets in the first hour: read commands that never create a store, one server
//! per SQLite file, errors that say what to do, configuration checks, the demo's limits, and a
//! command line that behaves in a pipe and a log file. Each runs the real binary.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::support::{self, Server};

const JSON: &str = "application/json";

fn tidings() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
    // The tests' own environment must not choose the store or the log format.
    command
        .env_remove("TIDINGS_DATABASE_URL")
        .env_remove("TIDINGS_CONFIG")
        .env_remove("TIDINGS_LOG")
        .env_remove("NO_COLOR");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `serve` with `args` in `cwd`; returns the process and the address it listens on, or
/// the process's output when it exits instead.
fn serve(cwd: &Path, args: &[&str]) -> Result<(Child, String), Output> {
    let mut child = tidings()
        .arg("serve")
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    match line.trim().strip_prefix("listening on ") {
        Some(address) => Ok((child, address.to_owned())),
        None => Err(child.wait_with_output().unwrap()),
    }
}

fn stop(mut child: Child) -> String {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    child.wait().unwrap();
    stderr
}

fn check_config(config: &str, envs: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tidings.toml");
    std::fs::write(&path, config).unwrap();
    let output = tidings()
        .args(["check-config", "--config"])
        .arg(&path)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (output.status.success(), text(&output.stderr))
}

const ENVIRONMENT: &str =
    "[[environments]]\nid = \"prod\"\nsecret_key = \"a-long-production-key\"\n";

#[test]
fn read_commands_never_create_a_store_and_say_where_they_looked() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["events", "messages"] {
        let output = tidings()
            .arg(command)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("no Tidings store at ./tidings-data/tidings.db")
                && stderr.contains("tidings serve"),
            "{command}: {stderr}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{command} created something"
        );
    }
    // A configuration naming a store that is not there: the same, and nothing is created.
    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        "[store]\nurl = \"sqlite://./data/x.db\"\n[[environments]]\nid = \"e\"\nsecret_key = \"${UNSET_SECRET_FOR_TEST}\"\n",
    )
    .unwrap();
    let output = tidings()
        .args(["events", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("./data/x.db") && stderr.contains("tidings.toml"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists());
}

#[test]
fn read_commands_need_only_the_store_settings_and_work_while_the_server_runs() {
    let server = Server::start();
    let body = r#"[{"email":"a@example.com","event":"delivered","sg_message_id":"m-read","sg_event_id":"e1","timestamp":1700000000}]"#;
    let response = server.post(
        "/v2/inbound-webhooks/delivery-providers/prod/sg",
        &[
            ("Authorization", "ApiKey prod-secret-key"),
            ("Content-Type", JSON),
        ],
        body.as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    // The configuration's `${TIDINGS_TEST_PROD_KEY}` is not set here: reading needs no secret.
    for command in ["events", "messages"] {
        let output = tidings()
            .args([command, "--config"])
            .arg(server.config())
            .env_remove("TIDINGS_TEST_PROD_KEY")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{command}: {}",
            text(&output.stderr)
        );
        assert!(text(&output.stdout).contains("m-read"), "{command}");
    }
}

#[test]
fn read_commands_do_not_migrate_postgresql() {
    let Some(base) = tidings_fixtures::optional::postgres_url() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let schema = format!("tidings_first_hour_{}", std::process::id());
    let (client, connection) = runtime
        .block_on(tokio_postgres::connect(&base, tokio_postgres::NoTls))
        .unwrap();
    runtime.spawn(connection);
    runtime
        .block_on(client.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        )))
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-csearch_path%3D{schema}");
    let output = tidings()
        .arg("messages")
        .env("TIDINGS_DATABASE_URL", &url)
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    let tables: i64 = runtime
        .block_on(client.query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        ))
        .unwrap()
        .get(0);
    runtime
        .block_on(client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")))
        .unwrap();
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("no Tidings store") && stderr.contains(&schema),
        "{stderr}"
    );
    assert_eq!(tables, 0, "a read command created tables");
}

#[test]
fn a_second_server_on_one_sqlite_file_is_refused_and_names_the_holder() {
    let server = Server::start();
    let output = tidings()
        .args(["serve", "--config"])
        .arg(server.config())
        .env("TIDINGS_TEST_PROD_KEY", "prod-secret-key")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("in use by process {}", server.pid())),
        "{stderr}"
    );
    // The first one still serves, and reading works beside it.
    assert_eq!(server.get("/healthz").status, 200);
    assert!(server.events().is_empty());
}

#[test]
fn data_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _) = serve(dir.path(), &["--listen", "127.0.0.1:0"]).unwrap();
    let data = dir.path().join("tidings-data");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for name in [
        "tidings.db",
        "tidings.db-wal",
        "tidings.db-shm",
        "tidings.db.lock",
    ] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    stop(child);
}

#[test]
fn an_address_in_use_says_how_to_choose_another() {
    let first = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let output = serve(dir.path(), &["--listen", &first.address]).unwrap_err();
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("already in use") && stderr.contains("--listen"),
        "{stderr}"
    );
}

#[test]
fn a_postgresql_start_up_failure_shows_its_cause_and_what_to_check() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let output = tidings()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "TIDINGS_DATABASE_URL",
            format!("postgres://tidings:pg-password@127.0.0.1:{port}/tidings"),
        )
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("Connection refused") && stderr.contains("is PostgreSQL running"),
        "{stderr}"
    );
    assert!(!stderr.contains("pg-password"), "{stderr}");

    let Some(base) = tidings_fixtures::optional::postgres_url() else {
        return;
    };
    let (prefix, _) = base.rsplit_once('/').unwrap();
    let output = tidings()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "TIDINGS_DATABASE_URL",
            format!("{prefix}/tidings_no_such_database"),
        )
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("\"tidings_no_such_database\" does not exist")
            && stderr.contains("createdb"),
        "{stderr}"
    );
}

#[test]
fn parse_without_the_url_a_provider_signed_asks_for_url() {
    let body = support::fixture("twilio/sdk-vector-request-validator.form");
    let output = tidings()
        .args([
            "parse",
            "--provider",
            "twilio",
            "--signing-key",
            "12345",
            "--header",
            "X-Twilio-Signature: RSOYDt4T1cUTdK1PDd93/VVr8B8=",
        ])
        .arg(&body)
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("--url") && !stderr.contains("public_url"),
        "{stderr}"
    );
    let output = tidings()
        .args([
            "parse",
            "--provider",
            "twilio",
            "--signing-key",
            "12345",
            "--header",
            "X-Twilio-Signature: RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            "--url",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
        ])
        .arg(&body)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn parse_into_a_closed_pipe_exits_quietly() {
    let body = std::fs::read(support::fixture("sendgrid/docs-batch-all-event-types.json")).unwrap();
    let mut child = tidings()
        .args([
            "parse",
            "--provider",
            "sendgrid",
            "--content-type",
            JSON,
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away (as `head` does) before the command writes anything: it reads its
    // body from stdin, which is written only now.
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&body).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("panicked") && stderr.is_empty(),
        "{stderr}"
    );
    assert!(output.status.success(), "{:?}", output.status);
}

#[test]
fn logs_written_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _) = serve(dir.path(), &["--listen", "127.0.0.1:0"]).unwrap();
    let stderr = stop(child);
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "escape codes in {stderr:?}");
}

#[test]
fn the_demo_stays_on_loopback_and_takes_provider_aliases_as_integration_ids() {
    let dir = tempfile::tempdir().unwrap();
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let output = serve(dir.path(), &["--listen", listen]).unwrap_err();
        let stderr = text(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains("loopback") && stderr.contains("--config"),
            "{listen}: {stderr}"
        );
    }
    assert!(!dir.path().join("tidings-data").exists());

    let (child, address) = serve(dir.path(), &["--listen", "localhost:0"]).unwrap();
    let body = std::fs::read(support::fixture("sendinblue/blocked.json")).unwrap();
    for integration in ["sendinblue", "brevo"] {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "POST /v2/inbound-webhooks/delivery-providers/dev/{integration} HTTP/1.1\r\nHost: x\r\nAuthorization: ApiKey dev-secret\r\nContent-Type: {JSON}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(&body).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "{integration}: {response}"
        );
    }
    stop(child);
}

#[test]
fn an_environment_accepts_every_key_of_secret_keys() {
    let server = Server::start_with(
        "\n[[environments]]\nid = \"rotating\"\nsecret_keys = [\"old-key-for-rotation\", \"new-key-for-rotation\"]\n\
         [[integrations]]\nid = \"sg\"\nenvironment = \"rotating\"\nprovider = \"sendgrid\"\n",
    );
    let body = br#"[{"email":"a@example.com","event":"delivered","sg_message_id":"m-rot","sg_event_id":"e","timestamp":1700000000}]"#;
    let path = "/v2/inbound-webhooks/delivery-providers/rotating/sg";
    for (key, status) in [
        ("old-key-for-rotation", 200),
        ("new-key-for-rotation", 200),
        ("prod-secret-key", 401),
        ("", 401),
    ] {
        let auth = format!("ApiKey {key}");
        let response = server.post(
            path,
            &[("Authorization", &auth), ("Content-Type", JSON)],
            body,
        );
        assert_eq!(response.status, status, "{key}: {}", response.text());
    }
}

#[test]
fn basic_credentials_without_a_colon_are_malformed() {
    let server = Server::start();
    let body = std::fs::read(support::fixture("postmark/delivery-with-metadata.json")).unwrap();
    let path = "/v2/inbound-webhooks/delivery-providers/prod/pm";
    let no_colon = format!("Basic {}", support::base64("hook"));
    let response = server.post(
        path,
        &[("Authorization", &no_colon), ("Content-Type", JSON)],
        &body,
    );
    assert_eq!(response.status, 401);
    assert!(
        response.text().contains("Malformed Basic"),
        "{}",
        response.text()
    );
}

#[test]
fn check_config_refuses_configurations_that_cannot_work() {
    let integration = |extra: &str| {
        format!("{ENVIRONMENT}[[integrations]]\nid = \"i\"\nenvironment = \"prod\"\n{extra}")
    };
    let cases: Vec<(String, &str)> = vec![
        ("listen = \"127.0.0.1:3000\"\n".into(), "none is defined"),
        (
            integration("provider = \"twilio\"\nsigning_key = \"twilio-auth-token\"\n"),
            "public_url",
        ),
        (
            integration("provider = \"mandrill\"\nsigning_key = \"mandrill-webhook-key\"\n"),
            "public_url",
        ),
        (
            integration("provider = \"mailgun\"\nsigning_key = \"${EMPTY_SECRET_FOR_TEST}\"\n"),
            "signing_key is empty",
        ),
        (
            integration("provider = \"mailgun\"\nsigning_keys = [\"long-enough-key\", \"\"]\n"),
            "signing_keys[1] is empty",
        ),
        (
            integration("provider = \"mailgun\"\nsigning_key = \"short\"\n"),
            "at least 8 characters",
        ),
        (
            integration(
                "provider = \"postmark\"\nbasic_auth = { username = \"hook\", password = \"\" }\n",
            ),
            "basic_auth.password is empty",
        ),
        (
            "[[environments]]\nid = \"prod\"\nsecret_key = \"dev-secret\"\n".into(),
            "public demo key",
        ),
        (
            "[[environments]]\nid = \"prod\"\nsecret_keys = [\"a-long-production-key\", \"dev-secret\"]\n"
                .into(),
            "secret_keys[1] is the public demo key",
        ),
        (
            "[[environments]]\nid = \"prod\"\nsecret_key = \"${EMPTY_SECRET_FOR_TEST}\"\n".into(),
            "secret_key is empty",
        ),
        ("[[environments]]\nid = \"prod\"\n".into(), "set secret_key"),
        (
            format!("{ENVIRONMENT}[store]\nurl = \"host=db user=app password=kv-s3cret\"\n"),
            "password=***",
        ),
    ];
    for (config, expected) in cases {
        let (ok, stderr) = check_config(&config, &[("EMPTY_SECRET_FOR_TEST", "")]);
        assert!(!ok, "accepted:\n{config}");
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
    // With public_url the URL-signed provider is fine; so is a provider that does not sign URLs.
    let (ok, stderr) = check_config(
        &format!(
            "public_url = \"https://hooks.example.com\"\n{}",
            integration("provider = \"twilio\"\nsigning_key = \"twilio-auth-token\"\n")
        ),
        &[],
    );
    assert!(ok, "{stderr}");
    let (ok, stderr) = check_config(
        &integration("provider = \"mailgun\"\nsigning_key = \"mailgun-signing-key\"\n"),
        &[],
    );
    assert!(ok, "{stderr}");
}

#[test]
fn a_skipped_postgresql_test_says_so_without_nocapture_and_fails_under_ci() {
    // This test binary, running only a PostgreSQL test, as `cargo test` would without the URL.
    let run = |ci: Option<&str>| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "scale_out::two_instances_on_one_database_end_as_one",
                "--exact",
            ])
            .env_remove("TIDINGS_TEST_POSTGRES_URL")
            .env_remove("CI");
        if let Some(ci) = ci {
            command.env("CI", ci);
        }
        command.output().unwrap()
    };
    let output = run(None);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("SKIPPED PostgreSQL tests: TIDINGS_TEST_POSTGRES_URL is not set")
            && stderr.contains("export TIDINGS_TEST_POSTGRES_URL="),
        "{stderr}"
    );
    let output = run(Some("true"));
    assert!(
        !output.status.success(),
        "under CI=true a missing PostgreSQL fails: {}",
        text(&output.stdout)
    );
}
