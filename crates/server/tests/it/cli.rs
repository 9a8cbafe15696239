//! The command line: `providers`, `parse`, `check-config`.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::fixture;

fn tidings(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn providers_lists_every_provider_as_json() {
    let (code, stdout, _) = tidings(&["providers", "--json"]);
    assert_eq!(code, 0);
    let list: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let ids: Vec<&str> = list.iter().map(|p| p["id"].as_str().unwrap()).collect();
    for id in [
        "sendgrid",
        "mailgun",
        "ses",
        "twilio",
        "one-signal",
        "push-webhook",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let sendgrid = list.iter().find(|p| p["id"] == "sendgrid").unwrap();
    assert_eq!(sendgrid["channel"], "email");
    assert_eq!(sendgrid["signature"], "ecdsa-p256-sha256");
    assert!(sendgrid["aliases"].is_array());
    assert_eq!(sendgrid["media_types"], json!(["json", "text", "none"]));
    assert_eq!(sendgrid["accepts_get"], false);
    let nexmo = list.iter().find(|p| p["id"] == "nexmo").unwrap();
    assert_eq!(nexmo["aliases"], json!(["vonage"]));
    assert_eq!(nexmo["accepts_get"], true);
    assert_eq!(nexmo["options"], json!(["signature_method"]));
    let postmark = list.iter().find(|p| p["id"] == "postmark").unwrap();
    assert!(postmark["signature"].is_null());
}

#[test]
fn parse_prints_the_response_body_and_exits_by_outcome() {
    let body = fixture("sendgrid/signed-dropped-official-vector.txt");
    let meta: Value = serde_json::from_slice(
        &std::fs::read(fixture("sendgrid/signed-dropped-official-vector.meta.json")).unwrap(),
    )
    .unwrap();
    let key = meta["signing_key"].as_str().unwrap();
    let signature = format!(
        "X-Twilio-Email-Event-Webhook-Signature: {}",
        meta["headers"]["X-Twilio-Email-Event-Webhook-Signature"]
            .as_str()
            .unwrap()
    );
    let timestamp = format!(
        "X-Twilio-Email-Event-Webhook-Timestamp: {}",
        meta["headers"]["X-Twilio-Email-Event-Webhook-Timestamp"]
            .as_str()
            .unwrap()
    );
    let body_arg = body.to_str().unwrap();
    let base = [
        "parse",
        "--provider",
        "sendgrid",
        "--content-type",
        "application/json",
        "--header",
    ];
    let mut args: Vec<&str> = base.to_vec();
    args.extend([
        signature.as_str(),
        "--header",
        timestamp.as_str(),
        "--signing-key",
        key,
        body_arg,
    ]);
    let (code, stdout, stderr) = tidings(&args);
    assert_eq!(code, 0, "{stderr}");
    let results: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(results[0]["event"]["status"], "dropped");

    let tampered = fixture("sendgrid/signed-dropped-tampered.txt");
    let last = args.len() - 1;
    args[last] = tampered.to_str().unwrap();
    let (code, stdout, stderr) = tidings(&args);
    assert_eq!(code, 3, "a bad signature exits 3");
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"not\": \"sendgrid\"").unwrap();
    let (code, _, stderr) =
        tidings(&["parse", "--provider", "sendgrid", garbage.to_str().unwrap()]);
    assert_eq!(code, 2, "an unparsable body exits 2");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    // The content type defaults from the extension; aliases work.
    let form = fixture("mailgun/legacy-bounced-enhanced-status-code.form");
    let (code, stdout, stderr) =
        tidings(&["parse", "--provider", "mailgun", form.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"bounced\""), "{stdout}");
}

#[test]
fn check_config_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "listen = \"nowhere\"\n[[integrations]]\nid = \"x\"\nenvironment = \"none\"\nprovider = \"nope\"\n",
    )
    .unwrap();
    let (code, _, stderr) = tidings(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(stderr.lines().count(), 4, "{stderr}");
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tidings.example.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["check-config", "--config", example.to_str().unwrap()])
        .envs([
            ("TIDINGS_PRODUCTION_KEY", "a-long-production-key"),
            // SendGrid's documented sample key: the key check parses it.
            (
                "SENDGRID_WEBHOOK_PUBLIC_KEY",
                "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==",
            ),
            ("MAILGUN_SIGNING_KEY", "mailgun-signing-key"),
            ("POSTMARK_HOOK_PASSWORD", "postmark-password"),
            ("TWILIO_AUTH_TOKEN", "twilio-auth-token"),
            (
                "TIDINGS_APP_WHSEC",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
