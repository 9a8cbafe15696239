//! The suppression list's API under `/v1/environments/{environmentId}/suppressions`: look a
//! recipient up (the question a sender asks before each send), list, add by hand, lift, and a
//! recipient's history. Authenticated exactly as the read API.

use bytes::Bytes;
use chrono::Utc;
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use tidings_core::Channel;
use tidings_core::recipient::{normalize, normalize_any};
use tidings_core::suppression::{Kind, Reason};
use tidings_store::{ManualRecord, SuppressionQuery};

use crate::api::{Query, authorize, decode, json, unavailable};
use crate::app::{App, Body, Endpoint};
use crate::error::ApiError;

/// Suppressions per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;
/// The largest `limit`.
const MAX_LIMIT: usize = 1000;
/// The largest body `PUT` and `DELETE` accept: a reason and a note.
const MAX_BODY: usize = 16 * 1024;
/// The longest note kept.
const MAX_NOTE: usize = 1000;

/// The body of `PUT` (and, optionally, `DELETE`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Manual {
    /// `manual` (the default), `complaint`, `permanentFailure` or `unsubscribed`.
    #[serde(default)]
    reason: Option<String>,
    /// Why, for whoever reads the list later.
    #[serde(default)]
    note: Option<String>,
    /// `email`, `sms` or `push`, when the recipient's form does not tell.
    #[serde(default)]
    channel: Option<Channel>,
}

/// Answers a suppression request (the route matched `endpoint` with `params`).
pub async fn answer<B>(
    app: &App,
    endpoint: Endpoint,
    params: &[&str],
    request: Request<B>,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let env = params.first().copied().unwrap_or_default().to_owned();
    authorize(app, &env, request.headers())?;
    let query = Query::parse(request.uri().query())?;
    let store = app.store();
    let phone = app.config().suppressions.settings().phone;
    let recipient = |channel: Option<Channel>| -> Result<(Channel, String), ApiError> {
        let raw = decode(params.get(1).copied().unwrap_or_default())?;
        let normalized = match channel {
            Some(channel) => normalize(channel, &raw, &phone).map(|r| (channel, r)),
            None => normalize_any(&raw, &phone),
        };
        normalized.ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{}` is not an email address, phone number or push token.",
                raw.chars().take(100).collect::<String>()
            ))
        })
    };
    let not_suppressed = |recipient: &str| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("`{recipient}` is not suppressed."),
        )
    };
    match endpoint {
        Endpoint::Suppression => {
            let (_, recipient) = recipient(query.get("channel").map(channel).transpose()?)?;
            let found = store
                .suppression(&env, &recipient, Utc::now())
                .await
                .map_err(unavailable)?;
            match found {
                Some(entry) => json(&entry),
                None => Err(not_suppressed(&recipient)),
            }
        }
        Endpoint::SuppressionHistory => {
            let (_, recipient) = recipient(query.get("channel").map(channel).transpose()?)?;
            let data = store
                .suppression_history(&env, &recipient)
                .await
                .map_err(unavailable)?;
            json(&serde_json::json!({ "recipient": recipient, "data": data }))
        }
        Endpoint::Suppressions => {
            let list = SuppressionQuery {
                environment_id: env.clone(),
                after: query.get("after").map(decode_cursor).transpose()?,
                limit: limit(&query)?,
                reason: query
                    .get("reason")
                    .map(|r| {
                        Reason::from_name(r).ok_or_else(|| {
                            ApiError::bad_request(format!("`{r}` is not a suppression reason."))
                        })
                    })
                    .transpose()?,
                channel: query.get("channel").map(channel).transpose()?,
                since: query.time("since")?,
                now: Utc::now(),
            };
            let page = store.suppressions(&list).await.map_err(unavailable)?;
            #[derive(serde::Serialize)]
            struct Page<'a> {
                data: &'a [tidings_store::Suppression],
                #[serde(skip_serializing_if = "Option::is_none")]
                next: Option<String>,
            }
            json(&Page {
                data: &page.data,
                next: page.next.as_deref().map(encode_cursor),
            })
        }
        Endpoint::SuppressionPut | Endpoint::SuppressionDelete => {
            // A small JSON body, read whole: the ingest path's memory budget is for webhooks.
            let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(
                request.into_body(),
                MAX_BODY,
            ))
            .await
            .map(|collected| collected.to_bytes())
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "The body must be JSON of at most {MAX_BODY} bytes."
                ))
            })?;
            let manual: Manual = if body.iter().all(u8::is_ascii_whitespace) {
                Manual::default()
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    ApiError::bad_request(format!("The body is not a valid suppression: {e}"))
                })?
            };
            let note = manual
                .note
                .map(|n| n.chars().take(MAX_NOTE).collect::<String>());
            let (channel, recipient) = recipient(manual.channel)?;
            let kind = if endpoint == Endpoint::SuppressionDelete {
                let current = store
                    .suppression(&env, &recipient, Utc::now())
                    .await
                    .map_err(unavailable)?;
                if current.is_none() {
                    return Err(not_suppressed(&recipient));
                }
                Kind::Removed
            } else {
                let reason = match manual.reason.as_deref() {
                    None => Reason::Manual,
                    Some(name) => Reason::from_name(name).ok_or_else(|| {
                        ApiError::bad_request(format!("`{name}` is not a suppression reason."))
                    })?,
                };
                Kind::for_manual(reason).ok_or_else(|| {
                    ApiError::bad_request(
                        "A temporary-failure suppression comes from failures; add it as `manual`.",
                    )
                })?
            };
            store
                .record_suppression(ManualRecord {
                    environment_id: env.clone(),
                    recipient: recipient.clone(),
                    channel,
                    kind,
                    at: Utc::now(),
                    note,
                })
                .await
                .map_err(unavailable)?;
            tracing::info!(
                environment = env,
                kind = kind.as_str(),
                "Suppression list changed by hand."
            );
            if kind == Kind::Removed {
                // The history, the removal on top: what was lifted stays on record.
                let data = store
                    .suppression_history(&env, &recipient)
                    .await
                    .map_err(unavailable)?;
                return json(&serde_json::json!({ "recipient": recipient, "data": data }));
            }
            let entry = store
                .suppression(&env, &recipient, Utc::now())
                .await
                .map_err(unavailable)?
                .ok_or_else(|| ApiError::unavailable("The entry is not visible yet; retry."))?;
            json(&entry)
        }
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "Not found.")),
    }
}

fn limit(query: &Query) -> Result<usize, ApiError> {
    match query.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("`limit` must be between 1 and {MAX_LIMIT}."))
            }),
    }
}

fn channel(name: &str) -> Result<Channel, ApiError> {
    [Channel::Email, Channel::Sms, Channel::Push, Channel::Chat]
        .into_iter()
        .find(|c| c.as_str() == name)
        .ok_or_else(|| ApiError::bad_request(format!("`{name}` is not a channel.")))
}

/// The list cursor: the last recipient listed, hex-encoded so that it is one opaque token.
fn encode_cursor(recipient: &str) -> String {
    hex::encode(recipient)
}

fn decode_cursor(token: &str) -> Result<String, ApiError> {
    hex::decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            ApiError::bad_request("`after` is not a cursor: pass back `next` exactly as given.")
        })
}
