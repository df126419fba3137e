//! Sending e-mail through the SMTP server the hookflow administrator configures.
//!
//! The plugin never sees the SMTP server, its credentials or the network: it hands a
//! [`Message`] to the host, which checks every recipient against the step's
//! `allowedRecipients` and sends it.
//!
//! ```ignore
//! let reply = mail::send(&Message {
//!     to: vec!["ops@example.com".into()],
//!     subject: "Flow run failed".into(),
//!     text: "Run 42 of flow Billing failed.".into(),
//!     ..Message::default()
//! })?;
//! ```

use crate::StepError;
use crate::bindings::hookflow::plugin::mail as wit_mail;

/// An e-mail to send. Addresses are plain (`a@example.com`) or with a display name
/// (`Ops <ops@example.com>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Sender; the server's default sender when `None`.
    pub from: Option<String>,
    /// Primary recipients (at least one of `to` and `cc`).
    pub to: Vec<String>,
    /// Copy recipients.
    pub cc: Vec<String>,
    /// Where replies go, when not to the sender.
    pub reply_to: Option<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body, always sent.
    pub text: String,
    /// HTML alternative to `text`, for clients that show it.
    pub html: Option<String>,
}

/// Sends `message` and returns the SMTP server's reply. Refused recipients, a missing SMTP
/// configuration and rejected messages are fatal errors; connection trouble is retryable.
pub fn send(message: &Message) -> Result<String, StepError> {
    let wit_message = wit_mail::Message {
        from: message.from.clone(),
        to: message.to.clone(),
        cc: message.cc.clone(),
        reply_to: message.reply_to.clone(),
        subject: message.subject.clone(),
        text: message.text.clone(),
        html: message.html.clone(),
    };
    wit_mail::send(&wit_message).map_err(|e| StepError {
        message: e.message,
        retryable: e.retryable,
    })
}
