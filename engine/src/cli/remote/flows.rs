//! `hookflow flow deploy|list|show|export|publish|enable|disable|delete|versions|diff`: flows on
//! a server.

use super::{Body, Connect, Remote, encode, print_json, text};
use crate::cli::progress::{Progress, Unit};
use crate::cli::table::Table;
use crate::cli::{Failure, usage};
use crate::flow::{self, Format};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum FlowRemoteCommand {
    /// Create or update a flow on a server from a file (matched by the flow's name); prints its
    /// webhook URL, and its credential when the server returns one (only this once).
    Deploy {
        /// The flow file (YAML or JSON).
        file: PathBuf,
        /// Update this flow instead of the one with the file's name.
        #[arg(long)]
        id: Option<String>,
        /// The project to create the flow in (default: the token's own project).
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// List the flows on a server.
    List {
        /// Only this project's flows.
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Show one flow: name, version, webhook URL, steps.
    Show {
        id: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Print a flow's definition as YAML (or JSON with --json); several flows (or --all) are
    /// written one file each (ID.yaml) into the --output directory.
    Export {
        /// The flows to export.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Every flow the token sees (with --project: that project's).
        #[arg(long)]
        all: bool,
        /// With --all: only this project's flows.
        #[arg(long, requires = "all")]
        project: Option<String>,
        /// A saved version instead of the current one (one flow only).
        #[arg(long)]
        version: Option<i64>,
        /// Write to this file (one flow) or directory (several) instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Nothing on standard error but errors (no progress, no summary).
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        connect: Connect,
    },
    /// Make a flow's pending draft the version its webhook and schedule run.
    Publish {
        id: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Turn a flow on again (its webhook answers, its schedule fires).
    Enable {
        id: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Turn a flow off: its webhook answers 404 and stores nothing, its schedule idles.
    Disable {
        id: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Delete a flow (its webhook stops answering).
    Delete {
        id: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// List a flow's saved versions, newest first.
    Versions {
        id: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// What changed between two versions of a flow, as a unified diff of their YAML.
    Diff {
        id: String,
        v1: i64,
        v2: i64,
        #[command(flatten)]
        connect: Connect,
    },
}

pub async fn run(command: FlowRemoteCommand) -> Result<ExitCode, Failure> {
    match command {
        FlowRemoteCommand::Deploy {
            file,
            id,
            project,
            connect,
        } => deploy(&file, id, project, &connect).await,
        FlowRemoteCommand::List { project, connect } => {
            let remote = connect.remote()?;
            let path = match &project {
                Some(p) => format!("/v1/flows?projectId={}", encode(p)),
                None => "/v1/flows".to_string(),
            };
            let flows = remote.get_all(&path).await?;
            if connect.json {
                print_json(&Value::Array(flows));
                return Ok(ExitCode::SUCCESS);
            }
            if flows.is_empty() {
                println!("no flows");
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&[
                "ID",
                "NAME",
                "ENABLED",
                "PUBLISHED",
                "DRAFT",
                "TRIGGER",
                "PROJECT",
                "UPDATED",
            ]);
            for f in &flows {
                table.row([
                    text(&f["id"]),
                    text(&f["name"]),
                    enabled(&f["enabled"]).into(),
                    text(&f["version"]),
                    text(&f["draftVersion"]),
                    text(&f["definition"]["trigger"]["type"]),
                    text(&f["projectId"]),
                    text(&f["updated"]),
                ]);
            }
            table.print();
            Ok(ExitCode::SUCCESS)
        }
        FlowRemoteCommand::Show { id, connect } => {
            let remote = connect.remote()?;
            let mut record = remote.get(&format!("/v1/flows/{}", encode(&id))).await?;
            absolute_webhook(&remote, &mut record);
            if connect.json {
                print_json(&record);
                return Ok(ExitCode::SUCCESS);
            }
            let definition = &record["definition"];
            println!("id:       {}", text(&record["id"]));
            println!("name:     {}", text(&record["name"]));
            println!("version:  {} (published)", text(&record["version"]));
            println!("enabled:  {}", enabled(&record["enabled"]));
            match record["draftVersion"].as_i64() {
                Some(draft) => println!(
                    "draft:    version {draft} pending (try it: hookflow flow test {id} --draft; publish it: hookflow flow publish {id})"
                ),
                None => println!("draft:    none pending"),
            }
            println!("project:  {}", text(&record["projectId"]));
            println!("trigger:  {}", trigger_line(&definition["trigger"]));
            if definition["trigger"]["type"] == "webhook" {
                println!("webhook:  {}", text(&record["webhookUrl"]));
            }
            println!("created:  {}", text(&record["created"]));
            println!("updated:  {}", text(&record["updated"]));
            let mut table = Table::new(&["STEP", "TYPE", "PLUGIN"]);
            steps_rows(&mut table, definition["steps"].as_array(), 0);
            if table.is_empty() {
                println!("no steps");
            } else {
                println!();
                table.print();
            }
            Ok(ExitCode::SUCCESS)
        }
        FlowRemoteCommand::Export {
            ids,
            all,
            project,
            version,
            output,
            quiet,
            connect,
        } => {
            let remote = connect.remote()?;
            let id = match ids.as_slice() {
                [one] if !all => one.clone(),
                _ => {
                    let many = Export {
                        ids,
                        all,
                        project,
                        quiet,
                    };
                    return export_many(&remote, many, version, output, connect.json).await;
                }
            };
            let definition = definition(&remote, &id, version).await?;
            let text = document(&definition, connect.json)?;
            match output {
                None => print!("{text}"),
                Some(path) => {
                    std::fs::write(&path, text)
                        .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))?;
                    if !quiet {
                        eprintln!("wrote {}", path.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FlowRemoteCommand::Publish { id, connect } => lifecycle(&id, "publish", &connect).await,
        FlowRemoteCommand::Enable { id, connect } => lifecycle(&id, "enable", &connect).await,
        FlowRemoteCommand::Disable { id, connect } => lifecycle(&id, "disable", &connect).await,
        FlowRemoteCommand::Delete { id, connect } => {
            let remote = connect.remote()?;
            remote
                .call(
                    Method::DELETE,
                    &format!("/v1/flows/{}", encode(&id)),
                    Body::None,
                )
                .await?;
            if connect.json {
                print_json(&json!({"id": id, "deleted": true}));
            } else {
                println!("deleted flow {id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        FlowRemoteCommand::Versions { id, connect } => {
            let remote = connect.remote()?;
            let page = remote
                .get(&format!("/v1/flows/{}/versions", encode(&id)))
                .await?;
            if connect.json {
                print_json(&page["data"]);
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&["VERSION", "CREATED"]);
            for v in page["data"].as_array().into_iter().flatten() {
                table.row([text(&v["version"]), text(&v["created"])]);
            }
            table.print();
            Ok(ExitCode::SUCCESS)
        }
        FlowRemoteCommand::Diff {
            id,
            v1,
            v2,
            connect,
        } => {
            let remote = connect.remote()?;
            let old = definition(&remote, &id, Some(v1)).await?;
            let new = definition(&remote, &id, Some(v2)).await?;
            let yaml =
                |v: &Value| crate::yaml::to_string(v).map_err(|e| Failure::Internal(e.into()));
            let diff = unified_diff(
                &yaml(&old)?,
                &yaml(&new)?,
                &format!("{id} version {v1}"),
                &format!("{id} version {v2}"),
            );
            if connect.json {
                print_json(
                    &json!({"id": id, "from": v1, "to": v2, "changed": !diff.is_empty(), "diff": diff}),
                );
            } else if diff.is_empty() {
                println!("versions {v1} and {v2} of {id} are the same");
            } else {
                print!("{diff}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `flow deploy`: parse and validate the file here (every problem at once, exit 2, nothing
/// sent), then update the flow with the file's name (or `--id`) or create it.
async fn deploy(
    file: &Path,
    id: Option<String>,
    project: Option<String>,
    connect: &Connect,
) -> Result<ExitCode, Failure> {
    let source = std::fs::read_to_string(file)
        .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
    let problems = |p: flow::validate::Problems| {
        let list: Vec<String> = p.0.iter().map(ToString::to_string).collect();
        usage(format!("{}: {}", file.display(), list.join("; ")))
    };
    let definition = flow::validate::parse_document(&source, Format::Auto).map_err(problems)?;
    let parsed = flow::flow_from_value(definition.clone()).map_err(problems)?;
    let remote = connect.remote()?;
    let existing = match id {
        Some(id) => Some(id),
        None => {
            let path = match &project {
                Some(p) => format!("/v1/flows?projectId={}", encode(p)),
                None => "/v1/flows".to_string(),
            };
            let same: Vec<String> = remote
                .get_all(&path)
                .await?
                .into_iter()
                .filter(|f| f["name"].as_str() == Some(parsed.name.as_str()))
                .filter_map(|f| f["id"].as_str().map(str::to_string))
                .collect();
            match same.as_slice() {
                [] => None,
                [one] => Some(one.clone()),
                many => {
                    return Err(usage(format!(
                        "{} flows are named {:?} ({}); pass --id to pick one",
                        many.len(),
                        parsed.name,
                        many.join(", ")
                    )));
                }
            }
        }
    };
    let (mut record, created) = match &existing {
        Some(id) => (
            remote
                .call(
                    Method::PUT,
                    &format!("/v1/flows/{}", encode(id)),
                    Body::Json(&definition),
                )
                .await?,
            false,
        ),
        None => {
            let path = match &project {
                Some(p) => format!("/v1/flows?projectId={}", encode(p)),
                None => "/v1/flows".to_string(),
            };
            (
                remote
                    .call(Method::POST, &path, Body::Json(&definition))
                    .await?,
                true,
            )
        }
    };
    absolute_webhook(&remote, &mut record);
    let credential = credential(&record);
    if connect.json {
        let mut out = json!({
            "action": if created { "created" } else { "updated" },
            "id": record["id"],
            "name": record["name"],
            "version": record["version"],
            "projectId": record["projectId"],
            "webhookUrl": record["webhookUrl"],
        });
        if let Some(c) = credential {
            out["credential"] = c.clone();
        }
        print_json(&out);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} flow {} {:?} (version {})",
        if created { "created" } else { "updated" },
        text(&record["id"]),
        parsed.name,
        text(&record["version"])
    );
    if definition["trigger"]["type"] == "webhook" {
        println!("webhook:    {}", text(&record["webhookUrl"]));
    }
    if let Some(c) = credential {
        let shown = match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        println!("credential: {shown}");
        println!("(the credential is shown only this once: keep it now)");
    }
    Ok(ExitCode::SUCCESS)
}

/// Which flows `flow export` writes when there are several.
struct Export {
    ids: Vec<String>,
    all: bool,
    project: Option<String>,
    quiet: bool,
}

/// Off a terminal, exports of fewer flows show no progress.
const EXPORT_PROGRESS_FROM: u64 = 50;

/// `flow export` of several flows (or `--all`): one file per flow, `ID.yaml` (`ID.json` with
/// `--json`), in the `--output` directory, with progress on standard error.
async fn export_many(
    remote: &Remote,
    which: Export,
    version: Option<i64>,
    output: Option<PathBuf>,
    json: bool,
) -> Result<ExitCode, Failure> {
    if version.is_some() {
        return Err(usage("--version exports one flow; give a single ID"));
    }
    let Some(dir) = output else {
        return Err(usage(
            "several flows are written one file each: give --output DIRECTORY",
        ));
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| usage(format!("cannot create {}: {e}", dir.display())))?;
    let records: Vec<Value> = if which.all {
        let path = match &which.project {
            Some(p) => format!("/v1/flows?projectId={}", encode(p)),
            None => "/v1/flows".to_string(),
        };
        remote.get_all(&path).await?
    } else {
        let mut records = Vec::with_capacity(which.ids.len());
        for id in &which.ids {
            records.push(remote.get(&format!("/v1/flows/{}", encode(id))).await?);
        }
        records
    };
    let total = records.len() as u64;
    let mut progress = Progress::new(
        "exporting",
        Unit::Items("flows"),
        Some(total),
        EXPORT_PROGRESS_FROM,
        which.quiet,
    );
    let extension = if json { "json" } else { "yaml" };
    for (done, record) in records.iter().enumerate() {
        let id = record["id"].as_str().unwrap_or_default();
        // Ids come from the server: keep only what is safe in a file name.
        let stem: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            .collect();
        if stem.is_empty() {
            return Err(Failure::Internal(anyhow::anyhow!(
                "the server answered a flow without a usable id: {}",
                text(&record["id"])
            )));
        }
        let path = dir.join(format!("{stem}.{extension}"));
        std::fs::write(&path, document(&record["definition"], json)?)
            .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))?;
        progress.show(done as u64 + 1, String::new);
    }
    progress.finish(total, String::new);
    if !which.quiet {
        eprintln!(
            "exported {total} flow{} to {}",
            if total == 1 { "" } else { "s" },
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A definition as a file holds it: YAML, or pretty JSON.
fn document(definition: &Value, json: bool) -> Result<String, Failure> {
    if json {
        Ok(
            serde_json::to_string_pretty(definition).map_err(|e| Failure::Internal(e.into()))?
                + "\n",
        )
    } else {
        crate::yaml::to_string(definition).map_err(|e| Failure::Internal(e.into()))
    }
}

/// `flow publish|enable|disable ID`: the lifecycle call, then where the flow stands.
async fn lifecycle(id: &str, action: &str, connect: &Connect) -> Result<ExitCode, Failure> {
    let remote = connect.remote()?;
    let record = remote
        .call(
            Method::POST,
            &format!("/v1/flows/{}/{action}", encode(id)),
            Body::None,
        )
        .await?;
    if connect.json {
        print_json(&record);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "flow {id}: version {} published, {}",
        text(&record["version"]),
        if record["enabled"] == false {
            "disabled"
        } else {
            "enabled"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `enabled` as the table shows it (`-` when the server does not say).
fn enabled(value: &Value) -> &'static str {
    match value.as_bool() {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

/// The credential a save answered with, when the server returns one (a generated webhook token
/// or signing secret): `credential` or `webhookCredential` at the top of the answer.
fn credential(record: &Value) -> Option<&Value> {
    ["credential", "webhookCredential"]
        .iter()
        .map(|k| &record[*k])
        .find(|v| !v.is_null())
}

/// The server answers `webhookUrl` as a path; people need the whole URL.
fn absolute_webhook(remote: &Remote, record: &mut Value) {
    let id = record["id"].as_str().unwrap_or_default().to_string();
    let url = match record["webhookUrl"].as_str() {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => u.to_string(),
        Some(path) if path.starts_with('/') => format!("{}{path}", remote.base()),
        _ => format!("{}/v1/webhooks/{id}", remote.base()),
    };
    record["webhookUrl"] = json!(url);
}

/// The definition of a flow's current or given version.
async fn definition(remote: &Remote, id: &str, version: Option<i64>) -> Result<Value, Failure> {
    let path = match version {
        Some(v) => format!("/v1/flows/{}/versions/{v}", encode(id)),
        None => format!("/v1/flows/{}", encode(id)),
    };
    let record = remote.get(&path).await?;
    Ok(record["definition"].clone())
}

fn trigger_line(trigger: &Value) -> String {
    match trigger["type"].as_str() {
        Some("schedule") => format!("schedule ({})", text(&trigger["cron"])),
        Some("webhook") => {
            let auth = match &trigger["auth"] {
                Value::Null => "none".to_string(),
                Value::String(s) => s.clone(),
                a => text(&a["type"]),
            };
            format!("webhook (auth: {auth})")
        }
        _ => text(&trigger["type"]),
    }
}

/// One row per step, nested steps of router branches indented.
fn steps_rows(table: &mut Table, steps: Option<&Vec<Value>>, depth: usize) {
    for step in steps.into_iter().flatten() {
        let indent = "  ".repeat(depth);
        table.row([
            format!("{indent}{}", text(&step["name"])),
            text(&step["type"]),
            if step["type"] == "router" {
                format!(
                    "{} branches",
                    step["branches"].as_array().map_or(0, Vec::len)
                )
            } else {
                text(&step["plugin"])
            },
        ]);
        for branch in step["branches"].as_array().into_iter().flatten() {
            steps_rows(table, branch["steps"].as_array(), depth + 1);
        }
    }
}

/// Lines of context around each change in [`unified_diff`].
const CONTEXT: usize = 3;

/// Past this many line pairs the diff is not aligned line by line (the LCS table would be too
/// big): the whole old text is shown removed and the new one added.
const MAX_CELLS: usize = 16_000_000;

/// A unified diff (`---`/`+++` headers, `@@` hunks with [`CONTEXT`] lines) of two texts by
/// line; empty when they are equal. Aligned on a longest common subsequence.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a == b {
        return String::new();
    }
    let ops = edit_script(&a, &b);
    // Group ops into hunks: runs of changes with at most 2*CONTEXT equal lines between them.
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    let changes: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Same(..)))
        .map(|(i, _)| i)
        .collect();
    let mut start = 0;
    while start < changes.len() {
        let mut end = start;
        while end + 1 < changes.len() && changes[end + 1] - changes[end] <= 2 * CONTEXT + 1 {
            end += 1;
        }
        let from = changes[start].saturating_sub(CONTEXT);
        let to = (changes[end] + CONTEXT + 1).min(ops.len());
        let (mut old_start, mut new_start) = (None, None);
        let (mut old_count, mut new_count) = (0, 0);
        let mut body = String::new();
        for op in &ops[from..to] {
            match op {
                Op::Same(i, j) => {
                    old_start.get_or_insert(*i);
                    new_start.get_or_insert(*j);
                    old_count += 1;
                    new_count += 1;
                    body.push_str(&format!(" {}\n", a[*i]));
                }
                Op::Removed(i, j) => {
                    old_start.get_or_insert(*i);
                    new_start.get_or_insert(*j);
                    old_count += 1;
                    body.push_str(&format!("-{}\n", a[*i]));
                }
                Op::Added(i, j) => {
                    old_start.get_or_insert(*i);
                    new_start.get_or_insert(*j);
                    new_count += 1;
                    body.push_str(&format!("+{}\n", b[*j]));
                }
            }
        }
        // Unified diff line numbers are 1-based; an empty side names the line before it.
        let number = |start: Option<usize>, count: usize| {
            let s = start.unwrap_or(0);
            if count == 0 { s } else { s + 1 }
        };
        out.push_str(&format!(
            "@@ -{},{old_count} +{},{new_count} @@\n{body}",
            number(old_start, old_count),
            number(new_start, new_count)
        ));
        start = end + 1;
    }
    out
}

/// One line of an edit script, with the positions in the old and new text it stands at.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Same(usize, usize),
    Removed(usize, usize),
    Added(usize, usize),
}

fn edit_script(a: &[&str], b: &[&str]) -> Vec<Op> {
    // Common head and tail first: flow versions usually differ in a few places.
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut ops: Vec<Op> = (0..head).map(|i| Op::Same(i, i)).collect();
    let (n, m) = (ma.len(), mb.len());
    if n * m > MAX_CELLS {
        ops.extend((0..n).map(|i| Op::Removed(head + i, head)));
        ops.extend((0..m).map(|j| Op::Added(head + n, head + j)));
    } else {
        // lcs[i][j]: length of the LCS of ma[i..] and mb[j..].
        let mut lcs = vec![0u32; (n + 1) * (m + 1)];
        let at = |i: usize, j: usize| i * (m + 1) + j;
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[at(i, j)] = if ma[i] == mb[j] {
                    lcs[at(i + 1, j + 1)] + 1
                } else {
                    lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && ma[i] == mb[j] {
                ops.push(Op::Same(head + i, head + j));
                i += 1;
                j += 1;
            } else if j < m && (i == n || lcs[at(i, j + 1)] >= lcs[at(i + 1, j)]) {
                ops.push(Op::Added(head + i, head + j));
                j += 1;
            } else {
                ops.push(Op::Removed(head + i, head + j));
                i += 1;
            }
        }
    }
    let (ta, tb) = (a.len() - tail, b.len() - tail);
    ops.extend((0..tail).map(|k| Op::Same(ta + k, tb + k)));
    // Removals before additions within a change reads best: reorder each run of changes.
    let mut ordered = Vec::with_capacity(ops.len());
    let mut pending_added = Vec::new();
    for op in ops {
        match op {
            Op::Added(..) => pending_added.push(op),
            Op::Removed(..) => ordered.push(op),
            Op::Same(..) => {
                ordered.append(&mut pending_added);
                ordered.push(op);
            }
        }
    }
    ordered.append(&mut pending_added);
    ordered
}

#[cfg(test)]
mod tests {
    use super::unified_diff;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified_diff("a\nb\n", "a\nb\n", "x", "y"), "");
    }

    #[test]
    fn a_changed_line_is_one_hunk_with_context() {
        let old = "name: f\nsteps:\n- a\n- b\n- c\n- d\n- e\n- f\n- g\n";
        let new = "name: f\nsteps:\n- a\n- b\n- c\n- D\n- e\n- f\n- g\n";
        assert_eq!(
            unified_diff(old, new, "v1", "v2"),
            "--- v1\n+++ v2\n@@ -3,7 +3,7 @@\n - a\n - b\n - c\n-- d\n+- D\n - e\n - f\n - g\n"
        );
    }

    #[test]
    fn additions_removals_and_far_apart_changes_make_separate_hunks() {
        let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let mut new = old
            .replace("line 2\n", "")
            .replace("line 18\n", "line 18\nnew\n");
        new.insert_str(0, "top\n");
        let diff = unified_diff(&old, &new, "a", "b");
        assert_eq!(diff.matches("@@ -").count(), 2, "{diff}");
        assert!(
            diff.contains("@@ -1,5 +1,5 @@\n+top\n line 1\n-line 2\n line 3\n"),
            "{diff}"
        );
        assert!(diff.contains("@@ -16,5 +16,6 @@"), "{diff}");
        assert!(diff.contains(" line 18\n+new\n line 19\n"), "{diff}");
    }

    #[test]
    fn an_empty_side_is_all_added_or_removed() {
        assert_eq!(
            unified_diff("", "a\n", "x", "y"),
            "--- x\n+++ y\n@@ -0,0 +1,1 @@\n+a\n"
        );
        assert_eq!(
            unified_diff("a\n", "", "x", "y"),
            "--- x\n+++ y\n@@ -1,1 +0,0 @@\n-a\n"
        );
    }
}
