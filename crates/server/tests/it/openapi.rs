//! The OpenAPI document (`crates/server/src/openapi.json`): Novu's ingest operation is contained
//! in it, it is valid OpenAPI 3.1, it documents exactly the routes the router serves, and the
//! server serves it byte for byte.
//!
//! Novu's document is YAML. Rather than add a YAML crate, the tests read `novu-openapi.json`, a
//! committed conversion of the committed `novu-openapi.yaml`; `novu_json_is_the_yaml` checks the
//! two agree with PyYAML (which comes with `openapi-spec-validator`, installed by `.ci/run`). So
//! the comparison itself needs nothing but Rust and runs everywhere.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::Server;

const INGEST: &str = "/v2/inbound-webhooks/delivery-providers/{environmentId}/{integrationId}";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

pub(crate) fn ours_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/openapi.json")
}

fn novu_path(ext: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/it/novu-openapi.{ext}"))
}

fn load(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `value` with every local `$ref` replaced by what it points to (recursively), and every
/// `enum` made a sorted set: Novu lists statuses more than once, and order carries no meaning.
fn resolved(doc: &Value, value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let pointer = target
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("not a local $ref: {target}"));
                let pointed = doc
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref: {target}"));
                let mut out = resolved(doc, pointed);
                // Keywords beside a $ref (3.1) apply too.
                if let Value::Object(out) = &mut out {
                    for (k, v) in map.iter().filter(|(k, _)| *k != "$ref") {
                        out.insert(k.clone(), resolved(doc, v));
                    }
                }
                return out;
            }
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let v = match (k.as_str(), v) {
                    ("enum", Value::Array(items)) => {
                        let set: BTreeSet<String> = items.iter().map(Value::to_string).collect();
                        Value::Array(
                            set.iter()
                                .map(|s| serde_json::from_str(s).unwrap())
                                .collect(),
                        )
                    }
                    _ => resolved(doc, v),
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| resolved(doc, v)).collect()),
        other => other.clone(),
    }
}

/// The security requirements that apply to an operation: its own, else the document's.
fn effective_security<'a>(doc: &'a Value, operation: &'a Value) -> &'a Vec<Value> {
    operation
        .get("security")
        .or_else(|| doc.get("security"))
        .and_then(Value::as_array)
        .expect("a security requirement")
}

#[test]
fn novus_ingest_operation_is_contained_in_ours() {
    let novu = load(&novu_path("json"));
    let ours = load(&ours_path());
    let theirs_op = &novu["paths"][INGEST]["post"];
    let our_op = &ours["paths"][INGEST]["post"];
    assert!(theirs_op.is_object(), "Novu's fixture lacks the operation");
    assert!(our_op.is_object(), "our document lacks {INGEST}");

    // What SDK generators key on.
    for key in ["operationId", "summary", "tags"] {
        assert_eq!(our_op[key], theirs_op[key], "{key}");
    }

    // Parameters: the same ones, each exactly as Novu declares it.
    assert_eq!(
        resolved(&ours, &our_op["parameters"]),
        resolved(&novu, &theirs_op["parameters"]),
        "parameters"
    );

    // Security: every way Novu's operation authenticates is one of ours, with the same scheme.
    let our_security = effective_security(&ours, our_op);
    for requirement in effective_security(&novu, theirs_op) {
        assert!(
            our_security.contains(requirement),
            "Novu's security requirement {requirement} is not ours"
        );
        for scheme in requirement.as_object().unwrap().keys() {
            let theirs = &novu["components"]["securitySchemes"][scheme];
            let mine = &ours["components"]["securitySchemes"][scheme];
            for key in ["type", "in", "name", "scheme"] {
                assert_eq!(
                    mine.get(key),
                    theirs.get(key),
                    "security scheme {scheme}.{key}"
                );
            }
        }
    }

    // The body Novu documents is one we accept.
    assert_eq!(our_op["requestBody"]["required"], true);
    for media in theirs_op["requestBody"]["content"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(
            our_op["requestBody"]["content"].get(media).is_some(),
            "request body {media}"
        );
    }

    // Every response Novu documents, with an equal schema (refs resolved, enums as sets).
    let theirs_responses = theirs_op["responses"].as_object().unwrap();
    assert!(theirs_responses.contains_key("200"));
    for (code, theirs) in theirs_responses {
        let theirs = resolved(&novu, theirs);
        let mine = resolved(&ours, &our_op["responses"][code]);
        assert_eq!(
            mine["content"], theirs["content"],
            "response {code}: content and schema"
        );
    }
    // The resolution reached the status enum: a check that could not fail would prove nothing.
    let status = &resolved(&ours, &our_op["responses"]["200"])["content"]["application/json"]["schema"]
        ["items"]["properties"]["event"]["allOf"][0]["properties"]["status"];
    assert_eq!(
        status["enum"].as_array().map(Vec::len),
        Some(20),
        "{status}"
    );
}

#[test]
fn the_documented_statuses_and_webhook_types_are_tidings_statuses() {
    let ours = load(&ours_path());
    let statuses: BTreeSet<String> = tidings_core::Status::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    let set = |value: &Value| -> BTreeSet<String> {
        value
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {value}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let schemas = &ours["components"]["schemas"];
    assert_eq!(
        set(&schemas["EventBody"]["properties"]["status"]["enum"]),
        statuses
    );
    assert_eq!(set(&schemas["Status"]["enum"]), statuses);
    // Outbound webhooks: one `message.<status>` entry per status, each the documented payload.
    let types: BTreeSet<String> = statuses.iter().map(|s| format!("message.{s}")).collect();
    assert_eq!(
        set(&schemas["WebhookPayload"]["properties"]["type"]["enum"]),
        types
    );
    let webhooks = ours["webhooks"].as_object().unwrap();
    assert_eq!(webhooks.keys().cloned().collect::<BTreeSet<_>>(), types);
    for (name, item) in webhooks {
        let item = resolved(&ours, item);
        let post = &item["post"];
        let headers: BTreeSet<&str> = post["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "header" && p["required"] == true)
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            headers,
            BTreeSet::from(["webhook-id", "webhook-timestamp", "webhook-signature"]),
            "{name}: the Standard Webhooks headers"
        );
        assert!(
            post["requestBody"]["content"]["application/json"]["schema"]["properties"]["type"]
                ["enum"]
                .as_array()
                .unwrap()
                .contains(&Value::from(name.as_str())),
            "{name}: its payload's type"
        );
    }
}

/// A route pattern with its parameters blanked, so `{env}`, `:env` and `{environmentId}` match.
fn normalized(method: &str, pattern: &str) -> (String, String) {
    let path = pattern
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') || segment.starts_with(':') || segment == "*" {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    (method.to_ascii_uppercase(), path)
}

#[test]
fn the_document_has_every_route_and_only_those() {
    let ours = load(&ours_path());
    let documented: BTreeSet<(String, String)> = ours["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| normalized(m, path))
        })
        .collect();
    let served: BTreeSet<(String, String)> = tidings::app::ROUTES
        .iter()
        .map(|route| normalized(route.method.as_str(), route.path))
        .collect();
    assert!(served.contains(&normalized("POST", INGEST)));
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "not in the document: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
}

#[test]
fn the_server_serves_the_document_as_is() {
    let server = Server::start();
    let response = server.get("/openapi.json");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(
        response.body,
        std::fs::read(ours_path()).unwrap(),
        "the served document is the file"
    );
    assert_eq!(server.post("/openapi.json", &[], b"").status, 405);
}

/// Loads the document (`sys.argv[1]`) and defines `inline` (every `$ref` replaced by its
/// target) and `closed` (`allOf` of objects merged, then no properties beyond the documented
/// ones) for the scripts that check bodies against it.
pub(crate) const SCHEMA_HELPERS: &str = r##"
import json, sys
from openapi_schema_validator import OAS31Validator, oas31_format_checker
with open(sys.argv[1]) as f:
    doc = json.load(f)

def inline(node):
    if isinstance(node, list):
        return [inline(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        merged = dict(inline(target))
        merged.update({k: inline(v) for k, v in node.items() if k != "$ref"})
        return merged
    return {k: inline(v) for k, v in node.items()}

def closed(node):
    if isinstance(node, list):
        return [closed(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: closed(v) for k, v in node.items()}
    parts = node.get("allOf")
    if parts and all("properties" in p for p in parts):
        del node["allOf"]
        node["type"] = "object"
        node["properties"] = {k: v for p in parts for k, v in p["properties"].items()}
        node["required"] = sorted({r for p in parts for r in p.get("required", [])})
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    return node

"##;

/// Checks recorded answers against the document: each status is documented for its operation,
/// with its media type, and the body validates against the documented schema. The schemas are
/// closed first (`allOf` of objects merged, then no properties beyond the documented ones), so an
/// undocumented field fails too.
const CHECK_ANSWERS: &str = r##"
with open(sys.argv[2]) as f:
    answers = json.load(f)

failures = []
for a in answers:
    what = f"{a['what']} ({a['method'].upper()} {a['path']} -> {a['status']})"
    response = doc["paths"][a["path"]][a["method"]]["responses"].get(str(a["status"]))
    if response is None:
        failures.append(f"{what}: status not documented")
        continue
    response = inline(response)
    media = a["contentType"].split(";")[0].strip()
    if media not in response.get("content", {}):
        failures.append(f"{what}: {media} not documented")
        continue
    schema = closed(response["content"][media]["schema"])
    body = json.loads(a["body"]) if media == "application/json" else a["body"]
    for error in OAS31Validator(schema, format_checker=oas31_format_checker).iter_errors(body):
        failures.append(f"{what}: {error.message} at {list(error.absolute_path)}")
print("\n".join(failures), file=sys.stderr)
sys.exit(1 if failures else 0)
"##;

/// What the case is, method, the documented path, the path asked, headers, body.
type Request<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [u8],
);

/// The status and content type of a response whose body never ends (the event stream).
fn head_of(server: &Server, path: &str, key: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(&server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {key}\r\n\r\n",
        server.address
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut content_type = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-type")
        {
            content_type = value.trim().to_owned();
        }
    }
    (status, content_type)
}

#[test]
fn the_server_answers_as_documented() {
    let server = Server::start();
    let json = "application/json";
    let key = "ApiKey prod-secret-key";
    let sg = "/v2/inbound-webhooks/delivery-providers/prod/sg";
    let batch = std::fs::read(crate::support::fixture(
        "sendgrid/docs-batch-all-event-types.json",
    ))
    .unwrap();
    let event = r#"[{"email":"a@example.com","event":"delivered","sg_message_id":"m1","sg_event_id":"e1","timestamp":1700000000}]"#;
    let other = event.replace("delivered", "open");
    let big = format!("[{}]", vec![&event[1..event.len() - 1]; 2000].join(","));
    let auth = [("Authorization", key), ("Content-Type", json)];
    let anonymous = [("Content-Type", json)];
    let xml = [("Authorization", key), ("Content-Type", "application/xml")];
    let with_key = [
        ("Authorization", key),
        ("Content-Type", json),
        ("Idempotency-Key", "doc-key"),
    ];
    let read = [("Authorization", key)];
    let wrong = [("Authorization", "ApiKey staging-secret-key")];
    let events = "/v1/environments/{environmentId}/events";
    let message =
        "/v1/environments/{environmentId}/integrations/{integrationId}/messages/{messageId}";
    let messages = "/v1/environments/{environmentId}/messages";
    let suppressions = "/v1/environments/{environmentId}/suppressions";
    let suppression = "/v1/environments/{environmentId}/suppressions/{recipient}";
    let history = "/v1/environments/{environmentId}/suppressions/{recipient}/history";
    let cases: Vec<Request<'_>> = vec![
        (
            "a batch of every SendGrid event",
            "POST",
            INGEST,
            sg,
            &auth,
            &batch,
        ),
        (
            "an idempotency key, first use",
            "POST",
            INGEST,
            sg,
            &with_key,
            event.as_bytes(),
        ),
        ("a replay", "POST", INGEST, sg, &with_key, event.as_bytes()),
        (
            "a key reused for another body",
            "POST",
            INGEST,
            sg,
            &with_key,
            other.as_bytes(),
        ),
        (
            "no credentials",
            "POST",
            INGEST,
            sg,
            &anonymous,
            event.as_bytes(),
        ),
        (
            "an unknown environment",
            "POST",
            INGEST,
            "/v2/inbound-webhooks/delivery-providers/nope/sg",
            &auth,
            event.as_bytes(),
        ),
        ("XML", "POST", INGEST, sg, &xml, b"<a/>"),
        (
            "malformed JSON",
            "POST",
            INGEST,
            sg,
            &auth,
            b"[{\"event\": ",
        ),
        ("too large", "POST", INGEST, sg, &auth, big.as_bytes()),
        (
            "events",
            "GET",
            events,
            "/v1/environments/prod/events",
            &read,
            b"",
        ),
        (
            "events with rows, filtered",
            "GET",
            events,
            "/v1/environments/prod/events?include=row&status=bounced,delivered&limit=5",
            &read,
            b"",
        ),
        (
            "a malformed cursor",
            "GET",
            events,
            "/v1/environments/prod/events?after=nonsense",
            &read,
            b"",
        ),
        (
            "another environment's key",
            "GET",
            events,
            "/v1/environments/prod/events",
            &wrong,
            b"",
        ),
        (
            "a message",
            "GET",
            message,
            "/v1/environments/prod/integrations/sg/messages/m1",
            &read,
            b"",
        ),
        (
            "an unknown message",
            "GET",
            message,
            "/v1/environments/prod/integrations/sg/messages/nope",
            &read,
            b"",
        ),
        (
            "a message by id",
            "GET",
            messages,
            "/v1/environments/prod/messages?id=m1",
            &read,
            b"",
        ),
        (
            "messages by status",
            "GET",
            messages,
            "/v1/environments/prod/messages?status=delivered,opened",
            &read,
            b"",
        ),
        (
            "a suppressed recipient (the batch's bounce)",
            "GET",
            suppression,
            "/v1/environments/prod/suppressions/example%40test.com",
            &read,
            b"",
        ),
        (
            "a recipient that is not suppressed",
            "GET",
            suppression,
            "/v1/environments/prod/suppressions/nobody%40example.com",
            &read,
            b"",
        ),
        (
            "not a recipient",
            "GET",
            suppression,
            "/v1/environments/prod/suppressions/%20",
            &read,
            b"",
        ),
        (
            "suppressions",
            "GET",
            suppressions,
            "/v1/environments/prod/suppressions?channel=email&limit=1",
            &read,
            b"",
        ),
        (
            "suppress by hand",
            "PUT",
            suppression,
            "/v1/environments/prod/suppressions/hand%40example.com",
            &read,
            br#"{"reason": "unsubscribed", "note": "by phone"}"#,
        ),
        (
            "lift by hand",
            "DELETE",
            suppression,
            "/v1/environments/prod/suppressions/hand%40example.com",
            &read,
            b"",
        ),
        (
            "a recipient's history",
            "GET",
            history,
            "/v1/environments/prod/suppressions/hand%40example.com/history",
            &read,
            b"",
        ),
        ("liveness", "GET", "/healthz", "/healthz", &[], b""),
        ("readiness", "GET", "/readyz", "/readyz", &[], b""),
        ("metrics", "GET", "/metrics", "/metrics", &[], b""),
        (
            "the document",
            "GET",
            "/openapi.json",
            "/openapi.json",
            &[],
            b"",
        ),
    ];
    let mut answers: Vec<Value> = cases
        .into_iter()
        .map(|(what, method, documented, path, headers, body)| {
            let response = server.request(method, path, headers, body);
            serde_json::json!({
                "what": what,
                "method": method.to_ascii_lowercase(),
                "path": documented,
                "status": response.status,
                "contentType": response.header("content-type").unwrap_or(""),
                "body": response.text(),
            })
        })
        .collect();
    let (status, content_type) = head_of(&server, "/v1/environments/prod/events/stream", key);
    answers.push(serde_json::json!({
        "what": "the live stream",
        "method": "get",
        "path": "/v1/environments/{environmentId}/events/stream",
        "status": status,
        "contentType": content_type,
        "body": "",
    }));
    let statuses: BTreeSet<u64> = answers
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        BTreeSet::from([200, 400, 401, 404, 413, 415, 422]),
        "the cases cover these answers"
    );
    let message_answer = answers.iter().find(|a| a["what"] == "a message").unwrap();
    assert_eq!(message_answer["status"], 200, "{message_answer}");
    for what in [
        "a suppressed recipient (the batch's bounce)",
        "suppress by hand",
        "lift by hand",
    ] {
        let answer = answers.iter().find(|a| a["what"] == what).unwrap();
        assert_eq!(answer["status"], 200, "{answer}");
    }
    let dir = tempfile::tempdir().unwrap();
    let recorded = dir.path().join("answers.json");
    std::fs::write(&recorded, serde_json::to_vec(&answers).unwrap()).unwrap();
    let Some(output) = python(
        "openapi_schema_validator",
        &format!("{SCHEMA_HELPERS}{CHECK_ANSWERS}"),
        &[&ours_path(), &recorded],
    ) else {
        return;
    };
    assert!(
        output.status.success(),
        "answers that differ from the document:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `python3 -c script args...` when `module` can be imported. Without it the test is
/// skipped with a line on stderr, except under `CI=true`, where a missing dependency fails.
pub(crate) fn python(module: &str, script: &str, args: &[&Path]) -> Option<std::process::Output> {
    let importable = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        let why = format!(
            "python3 with the `{module}` module is missing (pip install openapi-spec-validator)"
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
        return None;
    }
    Some(
        Command::new("python3")
            .args(["-c", script])
            .args(args)
            .output()
            .unwrap(),
    )
}

const VALIDATE: &str = "
import json, sys
from openapi_spec_validator import validate, OpenAPIV31SpecValidator
with open(sys.argv[1]) as f:
    validate(json.load(f), cls=OpenAPIV31SpecValidator)
";

#[test]
fn the_document_is_valid_openapi_3_1() {
    let ours = load(&ours_path());
    assert_eq!(ours["openapi"], "3.1.0");
    assert_eq!(
        ours["info"]["version"],
        env!("CARGO_PKG_VERSION"),
        "the document's version is the release's"
    );
    let Some(output) = python("openapi_spec_validator", VALIDATE, &[&ours_path()]) else {
        return;
    };
    assert!(
        output.status.success(),
        "openapi-spec-validator rejects the document:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The validator does reject a broken document (here: a dangling reference).
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    let text = std::fs::read_to_string(ours_path()).unwrap().replace(
        "#/components/schemas/Event\"",
        "#/components/schemas/Nothing\"",
    );
    std::fs::write(&broken, text).unwrap();
    let output = python("openapi_spec_validator", VALIDATE, &[&broken]).unwrap();
    assert!(!output.status.success(), "a dangling $ref went unnoticed");
}

#[test]
fn novu_json_is_the_yaml() {
    let script = "
import json, sys, yaml
with open(sys.argv[1]) as a, open(sys.argv[2]) as b:
    sys.exit(0 if yaml.safe_load(a) == json.load(b) else 1)
";
    let Some(output) = python("yaml", script, &[&novu_path("yaml"), &novu_path("json")]) else {
        return;
    };
    assert!(
        output.status.success(),
        "tests/it/novu-openapi.json is not tests/it/novu-openapi.yaml: convert it again\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
