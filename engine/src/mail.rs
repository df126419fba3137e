//! E-mail as a host capability: plugins hand the host a message; the host owns the SMTP
//! connection (`HOOKFLOW_SMTP_URL`) and its credentials, and sends only to the recipients the
//! step's `allowedRecipients` grant. Nothing is granted by default: without a configured server
//! or without patterns, every send is refused with a message saying what is missing.

pub use crate::flow::RecipientPattern;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::Arc;
use std::time::Duration;

/// Recipients (to + cc) one message may have.
const MAX_RECIPIENTS: usize = 50;
/// Largest text or HTML body accepted.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Longest subject accepted (RFC 5322 caps a header line at 998 characters).
const MAX_SUBJECT_CHARS: usize = 900;
/// Time for one SMTP conversation; a step's own timeout may cut it shorter.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// A message as a plugin hands it over.
#[derive(Debug, Clone, Default)]
pub struct MailRequest {
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Why a send failed, and whether a later attempt could succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailError {
    pub message: String,
    pub retryable: bool,
}

impl MailError {
    fn fatal(message: impl Into<String>) -> MailError {
        MailError {
            message: message.into(),
            retryable: false,
        }
    }
}

/// What one step may do with e-mail: the server's mailer (if configured) and its patterns.
#[derive(Clone, Default)]
pub struct MailGrant {
    pub mailer: Option<Arc<Mailer>>,
    pub allowed_recipients: Vec<RecipientPattern>,
}

/// The SMTP client, one per process.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    default_from: Option<Mailbox>,
}

impl Mailer {
    /// A mailer for `url` (`smtp://[user:pass@]host[:port][?tls=required|opportunistic]` or
    /// `smtps://...`). `from` is the sender used when a message names none. Errors never
    /// repeat the URL, which may hold a password.
    pub fn new(url: &str, from: Option<&str>) -> anyhow::Result<Mailer> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("HOOKFLOW_SMTP_URL is not a usable SMTP URL: {e}"))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let default_from = from
            .map(|f| {
                f.parse::<Mailbox>()
                    .map_err(|e| anyhow::anyhow!("HOOKFLOW_SMTP_FROM {f:?} is not an address: {e}"))
            })
            .transpose()?;
        Ok(Mailer {
            transport,
            default_from,
        })
    }

    /// Checks `request` against `allowed` and sends it. The `Ok` value is the server's reply.
    pub async fn send(
        &self,
        request: &MailRequest,
        allowed: &[RecipientPattern],
    ) -> Result<String, MailError> {
        let message = self.build(request, allowed)?;
        match self.transport.send(message).await {
            Ok(response) => Ok(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )
            .trim()
            .to_string()),
            Err(error) => Err(MailError {
                message: format!("SMTP server refused or failed the message: {error}"),
                // A permanent (5xx) rejection will not change on retry; anything else might.
                retryable: !error.is_permanent(),
            }),
        }
    }

    fn build(
        &self,
        request: &MailRequest,
        allowed: &[RecipientPattern],
    ) -> Result<lettre::Message, MailError> {
        let recipients = request.to.len() + request.cc.len();
        if recipients == 0 {
            return Err(MailError::fatal("the message has no recipients"));
        }
        if recipients > MAX_RECIPIENTS {
            return Err(MailError::fatal(format!(
                "the message has {recipients} recipients, over the limit of {MAX_RECIPIENTS}"
            )));
        }
        if request.subject.chars().count() > MAX_SUBJECT_CHARS {
            return Err(MailError::fatal(format!(
                "the subject is longer than {MAX_SUBJECT_CHARS} characters"
            )));
        }
        let body_bytes = request.text.len() + request.html.as_ref().map_or(0, String::len);
        if body_bytes > MAX_BODY_BYTES {
            return Err(MailError::fatal(format!(
                "the body is {body_bytes} bytes, over the limit of {MAX_BODY_BYTES}"
            )));
        }
        let from = match &request.from {
            Some(from) => mailbox("from", from)?,
            None => self.default_from.clone().ok_or_else(|| {
                MailError::fatal("the message has no sender and HOOKFLOW_SMTP_FROM is not set")
            })?,
        };
        let mut builder = lettre::Message::builder()
            .from(from)
            .subject(request.subject.as_str());
        for (field, list) in [("to", &request.to), ("cc", &request.cc)] {
            for address in list {
                let mb = mailbox(field, address)?;
                let bare = mb.email.to_string();
                if allowed.is_empty() {
                    return Err(MailError::fatal(format!(
                        "recipient {bare} refused: this step has no allowedRecipients"
                    )));
                }
                if !allowed.iter().any(|p| p.matches(&bare)) {
                    return Err(MailError::fatal(format!(
                        "recipient {bare} refused: not in the step's allowedRecipients"
                    )));
                }
                builder = if field == "to" {
                    builder.to(mb)
                } else {
                    builder.cc(mb)
                };
            }
        }
        if let Some(reply_to) = &request.reply_to {
            builder = builder.reply_to(mailbox("replyTo", reply_to)?);
        }
        let plain = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(request.text.clone());
        let built = match &request.html {
            Some(html) => builder.multipart(
                MultiPart::alternative().singlepart(plain).singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
            ),
            None => builder.singlepart(plain),
        };
        built.map_err(|e| MailError::fatal(format!("cannot build the message: {e}")))
    }
}

fn mailbox(field: &str, address: &str) -> Result<Mailbox, MailError> {
    address
        .parse::<Mailbox>()
        .map_err(|e| MailError::fatal(format!("`{field}` {address:?} is not an address: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_outside_the_grant_are_refused_before_sending() {
        let mailer = Mailer::new("smtp://127.0.0.1:1", Some("hookflow@example.com")).unwrap();
        let allowed = vec![RecipientPattern::parse("*@example.com").unwrap()];
        let request = MailRequest {
            to: vec!["ops@example.com".into()],
            cc: vec!["Eve <eve@evil.test>".into()],
            subject: "hi".into(),
            text: "body".into(),
            ..MailRequest::default()
        };
        let error = mailer.build(&request, &allowed).unwrap_err();
        assert_eq!(
            error.message,
            "recipient eve@evil.test refused: not in the step's allowedRecipients"
        );
        let error = mailer.build(&request, &[]).unwrap_err();
        assert!(error.message.contains("no allowedRecipients"), "{error:?}");
        let ok = MailRequest {
            cc: vec![],
            ..request
        };
        assert!(mailer.build(&ok, &allowed).is_ok());
    }
}
