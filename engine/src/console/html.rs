//! HTML building blocks: escaping, the page layout, and the few components every page uses.
//! Pages are plain strings built with `format!`; everything that comes from data goes through
//! [`esc`] (text and attribute values alike), so no stored value can become markup.

use serde_json::Value;
use std::fmt::Write;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as text for a page: strings without quotes, the rest as JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Escaped [`text`].
pub fn t(value: &Value) -> String {
    esc(&text(value))
}

/// Percent-encodes a query or path component.
pub fn enc(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A `datetime-local` input's value (no zone, minutes or seconds) as RFC 3339, read as UTC;
/// a value that already names its zone is kept.
pub fn utc_of_local(local: &str) -> String {
    if local.len() == 16 {
        format!("{local}:00Z")
    } else if local.ends_with('Z') || local.contains('+') {
        local.to_string()
    } else {
        format!("{local}Z")
    }
}

/// Pretty JSON in a `<pre>`.
pub fn json_block(value: &Value) -> String {
    format!(
        "<pre class=\"json\">{}</pre>",
        esc(&serde_json::to_string_pretty(value).unwrap_or_default())
    )
}

/// What the layout needs to know about the viewer.
pub struct Chrome<'a> {
    pub who: &'a str,
    pub via_role: &'a str,
    /// `(id, name)` of the projects the viewer can switch between.
    pub projects: &'a [(String, String)],
    pub project: &'a str,
    pub csrf: &'a str,
    /// Which nav entry is current.
    pub section: &'a str,
}

const NAV: &[(&str, &str)] = &[
    ("flows", "Flows"),
    ("runs", "Runs"),
    ("event-streaming", "Event Streaming"),
    ("audit", "Audit log"),
    ("plugins", "Plugins"),
    ("secrets", "Secrets"),
    ("projects", "Projects"),
];

/// A whole page: header with navigation, project switcher and who-am-I, then `body`.
pub fn page(title: &str, chrome: &Chrome<'_>, notice: Option<&str>, body: &str) -> String {
    let mut nav = String::new();
    for (section, label) in NAV {
        let current = if *section == chrome.section {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"/{section}\"{current}>{}</a>", esc(label));
    }
    let mut options = String::new();
    for (id, name) in chrome.projects {
        let selected = if id == chrome.project {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            options,
            "<option value=\"{}\"{selected}>{}</option>",
            esc(id),
            esc(name)
        );
    }
    let notice = notice
        .map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", esc(n)))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · hookflow</title><link rel="stylesheet" href="/assets/console.css"><script src="/assets/console.js" defer></script></head>
<body><header><a class="brand" href="/flows">hookflow</a><nav>{nav}</nav>
<form class="switcher" method="get" action="/switch-project"><label>Project <select name="project" data-autosubmit>{options}</select></label><noscript><button>Switch</button></noscript></form>
<span class="whoami" data-testid="whoami">{who} <small>{role}</small></span>
<form method="post" action="/sign-out"><input type="hidden" name="csrf" value="{csrf}"><button class="link">Sign out</button></form></header>
<main><h1>{title}</h1>{notice}{body}</main></body></html>"#,
        title = esc(title),
        who = esc(chrome.who),
        role = esc(chrome.via_role),
        csrf = esc(chrome.csrf),
    )
}

/// A bare page (sign-in): no navigation.
pub fn bare(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · hookflow</title><link rel="stylesheet" href="/assets/console.css"><script src="/assets/console.js" defer></script></head>
<body class="bare"><main><h1>{title}</h1>{body}</main></body></html>"#,
        title = esc(title)
    )
}

/// An error message under a form field (`id` ties it to the field for screen readers).
pub fn field_error(field: &str, errors: &[(String, String)]) -> String {
    errors
        .iter()
        .filter(|(f, _)| f == field)
        .map(|(_, m)| {
            format!(
                "<p class=\"field-error\" id=\"{}-error\" role=\"alert\">{}</p>",
                esc(field),
                esc(m)
            )
        })
        .collect()
}

/// Errors that name no field of the form, shown above it.
pub fn form_errors(fields: &[&str], errors: &[(String, String)]) -> String {
    errors
        .iter()
        .filter(|(f, _)| !fields.contains(&f.as_str()))
        .map(|(_, m)| format!("<p class=\"form-error\" role=\"alert\">{}</p>", esc(m)))
        .collect()
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// A one-button form posting to `action`, asking first when `confirm` is set.
pub fn button_form(action: &str, label: &str, csrf: &str, confirm: Option<&str>) -> String {
    // A form that asks first is a destructive one: its button says so.
    let (confirm, class) = match confirm {
        Some(c) => (format!(" data-confirm=\"{}\"", esc(c)), " class=\"danger\""),
        None => (String::new(), ""),
    };
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\"{confirm}>{}<button{class}>{}</button></form>",
        esc(action),
        csrf_field(csrf),
        esc(label)
    )
}

/// A status badge (`SUCCEEDED`, `FAILED`, ...).
pub fn badge(status: &str) -> String {
    format!(
        "<span class=\"badge badge-{}\">{}</span>",
        esc(&status.to_ascii_lowercase()),
        esc(status)
    )
}

/// A value with a copy button (tokens and secrets shown once).
pub fn copyable(label: &str, value: &str, testid: &str) -> String {
    format!(
        "<div class=\"copy\"><label>{}<input readonly value=\"{}\" data-testid=\"{}\"></label><button type=\"button\" data-copy>Copy</button></div>",
        esc(label),
        esc(value),
        esc(testid)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(enc("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(text(&Value::from("plain")), "plain");
        assert_eq!(text(&serde_json::json!(3)), "3");
    }
}
