//! `hookflow destination list|create|test|deliveries|redeliver`: where the server streams its
//! audit events. The verification token and signing secret are printed once, on create.

use super::{Body, Connect, encode, print_json, text};
use crate::cli::table::Table;
use crate::cli::{Failure, usage};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum DestinationCommand {
    /// List destinations.
    List {
        #[command(flatten)]
        connect: Connect,
    },
    /// Create a destination; prints its verification token and signing secret (only this once).
    Create {
        /// Where to send events (https://; plain http only to loopback in development).
        endpoint: String,
        /// A name for people.
        #[arg(long)]
        name: String,
        /// Only these event types (repeatable or comma-separated; default: all).
        #[arg(long = "event", value_delimiter = ',')]
        events: Vec<String>,
        /// A custom header sent with every delivery, `NAME:VALUE` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// PLATFORM (every event; platform admins) or PROJECT.
        #[arg(long)]
        scope: Option<String>,
        /// The project of a PROJECT destination.
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Send the catalog's sample of an event to a destination (or to --to URL), signed like a
    /// real delivery, and print the answer; exit 1 when it was not a 2xx.
    Test {
        /// The destination (or give --to).
        id: Option<String>,
        /// A URL to try instead of a saved destination.
        #[arg(long, conflicts_with = "id")]
        to: Option<String>,
        /// The event type whose sample to send.
        #[arg(long, default_value = "flow.run.finished")]
        event: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// A destination's delivery attempts, newest first.
    Deliveries {
        id: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Queue events for delivery again: one (--event-id) or a time range (--after/--before).
    Redeliver {
        id: String,
        /// The audit event's id.
        #[arg(long)]
        event_id: Option<String>,
        /// Events created after this RFC 3339 time.
        #[arg(long)]
        after: Option<String>,
        /// Events created before this RFC 3339 time.
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
}

pub async fn run(command: DestinationCommand) -> Result<ExitCode, Failure> {
    match command {
        DestinationCommand::List { connect } => {
            let remote = connect.remote()?;
            let page = remote.get("/v1/event-destinations").await?;
            if connect.json {
                print_json(&page["data"]);
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&["ID", "NAME", "SCOPE", "URL", "EVENTS", "STATE"]);
            for d in page["data"].as_array().into_iter().flatten() {
                let events = match d["events"].as_array() {
                    Some(list) if !list.is_empty() => list
                        .iter()
                        .map(|e| e.as_str().unwrap_or("?"))
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => "all".into(),
                };
                table.row([
                    text(&d["id"]),
                    text(&d["name"]),
                    text(&d["scope"]),
                    text(&d["url"]),
                    events,
                    state(d),
                ]);
            }
            if table.is_empty() {
                println!("no destinations");
            } else {
                table.print();
            }
            Ok(ExitCode::SUCCESS)
        }
        DestinationCommand::Create {
            endpoint,
            name,
            events,
            headers,
            scope,
            project,
            connect,
        } => {
            let remote = connect.remote()?;
            let mut body = json!({"name": name, "url": endpoint});
            if !events.is_empty() {
                body["events"] = json!(events);
            }
            if !headers.is_empty() {
                let mut map = Map::new();
                for h in &headers {
                    let (k, v) = h
                        .split_once(':')
                        .ok_or_else(|| usage(format!("--header {h:?}: expected NAME:VALUE")))?;
                    map.insert(k.trim().to_string(), json!(v.trim()));
                }
                body["headers"] = Value::Object(map);
            }
            if let Some(scope) = scope {
                body["scope"] = json!(scope.to_ascii_uppercase());
            }
            let path = match &project {
                Some(p) => format!("/v1/event-destinations?projectId={}", encode(p)),
                None => "/v1/event-destinations".to_string(),
            };
            let view = remote.call(Method::POST, &path, Body::Json(&body)).await?;
            if connect.json {
                print_json(&view);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "created destination {} {:?} ({})",
                text(&view["id"]),
                text(&view["name"]),
                text(&view["scope"])
            );
            println!("url:                {}", text(&view["url"]));
            println!(
                "verification token: {} (header {})",
                text(&view["verificationToken"]),
                text(&view["verificationTokenHeader"])
            );
            println!("signing secret:     {}", text(&view["signingSecret"]));
            println!("(the token and the secret are shown only this once: keep them now)");
            Ok(ExitCode::SUCCESS)
        }
        DestinationCommand::Test {
            id,
            to,
            event,
            connect,
        } => {
            let body = match (id, to) {
                (Some(id), None) => json!({"destinationId": id, "event": event}),
                (None, Some(url)) => json!({"url": url, "event": event}),
                _ => return Err(usage("give a destination ID or --to URL")),
            };
            let remote = connect.remote()?;
            let answer = remote
                .call(
                    Method::POST,
                    "/v1/event-destinations/test",
                    Body::Json(&body),
                )
                .await?;
            let ok = answer["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s));
            if connect.json {
                print_json(&answer);
            } else if ok {
                println!(
                    "sent {event}: answered {} in {:.0} ms",
                    text(&answer["status"]),
                    answer["durationMs"].as_f64().unwrap_or_default()
                );
            } else {
                println!(
                    "sent {event}: {} {}",
                    match answer["status"].as_u64() {
                        Some(s) => format!("answered {s}"),
                        None => "no answer".into(),
                    },
                    super::one_line(&text(&answer["error"]))
                );
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        DestinationCommand::Deliveries { id, connect } => {
            let remote = connect.remote()?;
            let page = remote
                .get(&format!(
                    "/v1/event-destinations/{}/deliveries",
                    encode(&id)
                ))
                .await?;
            if connect.json {
                print_json(&page["data"]);
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&["CREATED", "EVENT", "ATTEMPT", "STATUS", "MS", "ERROR"]);
            for d in page["data"].as_array().into_iter().flatten() {
                table.row([
                    text(&d["created"]),
                    text(&d["eventId"]),
                    text(&d["attempt"]),
                    text(&d["statusCode"]),
                    format!("{:.0}", d["durationMs"].as_f64().unwrap_or_default()),
                    super::one_line(&text(&d["error"])),
                ]);
            }
            if table.is_empty() {
                println!("no deliveries yet");
            } else {
                table.print();
            }
            Ok(ExitCode::SUCCESS)
        }
        DestinationCommand::Redeliver {
            id,
            event_id,
            after,
            before,
            connect,
        } => {
            let mut body = Map::new();
            for (key, value) in [
                ("eventId", event_id),
                ("createdAfter", after),
                ("createdBefore", before),
            ] {
                if let Some(v) = value {
                    body.insert(key.into(), json!(v));
                }
            }
            let remote = connect.remote()?;
            let answer = remote
                .call(
                    Method::POST,
                    &format!("/v1/event-destinations/{}/redeliver", encode(&id)),
                    Body::Json(&Value::Object(body)),
                )
                .await?;
            if connect.json {
                print_json(&answer);
            } else {
                println!("queued {} event(s) for redelivery", text(&answer["queued"]));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// enabled, paused (circuit breaker), failing or disabled (with the reason).
fn state(d: &Value) -> String {
    if d["enabled"] == false {
        return match d["disabledReason"].as_str() {
            Some(reason) => format!("disabled: {reason}"),
            None => "disabled".into(),
        };
    }
    if !d["pausedUntil"].is_null() {
        return "paused".into();
    }
    if !d["failingSince"].is_null() {
        return format!("failing since {}", text(&d["failingSince"]));
    }
    "enabled".into()
}
