//! Checked access to a step's input object.
//!
//! The host validates step input against the plugin's schema, but a plugin must not rely on
//! that: [`Input`] re-checks each field as it is read and reports the offending field by name in
//! a non-retryable [`StepError`].
//!
//! ```ignore
//! let input = Input::new(&input, &["url", "timeoutMs"])?;
//! let url = input.url("url")?;
//! let timeout = input.opt_u32("timeoutMs")?;
//! ```

use crate::http::{self, Request};
use crate::{StepError, Value, json};
use serde_json::Map;

/// A step's input object, checked field by field. Explicit `null` reads like an absent field in
/// the `opt_*` accessors.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    fields: &'a Map<String, Value>,
}

impl<'a> Input<'a> {
    /// Checks that `input` is an object whose fields are all in `allowed`.
    pub fn new(input: &'a Value, allowed: &[&str]) -> Result<Self, StepError> {
        let Value::Object(fields) = input else {
            return Err(StepError::fatal("input must be an object"));
        };
        if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(StepError::fatal(format!(
                "unknown field `{unknown}` (expected {})",
                allowed
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(Input { fields })
    }

    /// The raw value of a field, `null` included.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.fields.get(name)
    }

    /// The value of a field, with `null` read as absent.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.fields.get(name).filter(|v| !v.is_null())
    }

    /// True when the field is present and not `null`.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A required, non-empty string.
    pub fn str(&self, name: &str) -> Result<&'a str, StepError> {
        self.opt_str(name)?
            .ok_or_else(|| StepError::fatal(format!("missing required field `{name}`")))
    }

    /// An optional string; if present it must be a non-empty string.
    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, StepError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Err(StepError::fatal(format!(
                "field `{name}` must not be empty"
            ))),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(StepError::fatal(format!("field `{name}` must be a string"))),
        }
    }

    /// An optional integer in `min..=max`.
    pub fn opt_int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, StepError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_i64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }) {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(StepError::fatal(format!(
                    "field `{name}` must be an integer from {min} to {max}"
                ))),
            },
        }
    }

    /// An optional number.
    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>, StepError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| StepError::fatal(format!("field `{name}` must be a number"))),
        }
    }

    /// An optional object.
    pub fn opt_object(&self, name: &str) -> Result<Option<&'a Map<String, Value>>, StepError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(StepError::fatal(format!(
                "field `{name}` must be an object"
            ))),
        }
    }

    /// An optional array.
    pub fn opt_array(&self, name: &str) -> Result<Option<&'a Vec<Value>>, StepError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(StepError::fatal(format!("field `{name}` must be an array"))),
        }
    }

    /// An optional object of string values (numbers and booleans are turned into text), e.g.
    /// headers or labels; `name.key` is named in errors.
    pub fn opt_string_map(&self, name: &str) -> Result<Option<Vec<(String, String)>>, StepError> {
        let Some(map) = self.opt_object(name)? else {
            return Ok(None);
        };
        map.iter()
            .map(|(k, v)| match scalar_text(v) {
                Some(text) => Ok((k.clone(), text)),
                None => Err(StepError::fatal(format!(
                    "field `{name}.{k}` must be a string"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A required absolute `http(s)://` URL.
    pub fn url(&self, name: &str) -> Result<&'a str, StepError> {
        let url = self.str(name)?;
        check_url_field(name, url)?;
        Ok(url)
    }

    /// A credential given either directly (`value_field`) or as the name of a secret granted
    /// to the step (`secret_field`); `None` when neither is present. Both at once is an error,
    /// and so is a secret that is not granted (naming the secret).
    pub fn opt_credential(
        &self,
        value_field: &str,
        secret_field: &str,
    ) -> Result<Option<String>, StepError> {
        match (self.opt_str(value_field)?, self.opt_str(secret_field)?) {
            (Some(_), Some(_)) => Err(StepError::fatal(format!(
                "give either `{value_field}` or `{secret_field}`, not both"
            ))),
            (Some(v), None) => Ok(Some(v.to_string())),
            (None, Some(name)) => read_secret(secret_field, name).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// Like [`Input::opt_credential`], but one of the two fields is required.
    pub fn credential(&self, value_field: &str, secret_field: &str) -> Result<String, StepError> {
        self.opt_credential(value_field, secret_field)?
            .ok_or_else(|| {
                StepError::fatal(format!(
                    "missing required field `{value_field}` (or `{secret_field}` naming a secret)"
                ))
            })
    }

    /// Like [`Input::credential`] for a URL (e.g. a webhook URL given directly or as a secret);
    /// the URL is checked but never repeated in errors, since it may be a credential.
    pub fn url_credential(
        &self,
        value_field: &str,
        secret_field: &str,
    ) -> Result<String, StepError> {
        let url = self.credential(value_field, secret_field)?;
        let field = if self.has(value_field) {
            value_field
        } else {
            secret_field
        };
        check_url_field(field, &url)?;
        Ok(url)
    }

    /// An optional `auth` field in the shape of [`Auth::schema`].
    pub fn opt_auth(&self, name: &str) -> Result<Option<Auth>, StepError> {
        let Some(auth) = self.opt_object(name)? else {
            return Ok(None);
        };
        let bad = |msg: &str| StepError::fatal(format!("field `{name}` {msg}"));
        let keys: Vec<&str> = auth.keys().map(String::as_str).collect();
        match keys.as_slice() {
            ["bearer"] | ["bearerSecret"] => {
                let inner = Input { fields: auth };
                let token = inner
                    .credential("bearer", "bearerSecret")
                    .map_err(|e| prefix(name, e))?;
                Ok(Some(Auth::Bearer(token)))
            }
            ["basic"] => {
                let scope = format!("{name}.basic");
                let inner = match auth.get("basic") {
                    Some(basic @ Value::Object(_)) => {
                        Input::new(basic, &["username", "password", "passwordSecret"])
                            .map_err(|e| prefix(&scope, e))?
                    }
                    _ => {
                        return Err(bad(
                            "`basic` must be an object with `username` and `password`",
                        ));
                    }
                };
                let username = inner.str("username").map_err(|e| prefix(&scope, e))?;
                let password = inner
                    .credential("password", "passwordSecret")
                    .map_err(|e| prefix(&scope, e))?;
                Ok(Some(Auth::Basic {
                    username: username.to_string(),
                    password,
                }))
            }
            _ => Err(bad(
                "must have exactly one of `bearer`, `bearerSecret` or `basic`",
            )),
        }
    }
}

/// Credentials for an HTTP request.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic ...`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

impl core::fmt::Debug for Auth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Auth::Bearer(..)"),
            Auth::Basic { username, .. } => write!(f, "Auth::Basic({username}, ..)"),
        }
    }
}

impl Auth {
    /// Adds the `authorization` header to `req`.
    pub fn apply(&self, req: Request) -> Request {
        match self {
            Auth::Bearer(token) => req.bearer(token),
            Auth::Basic { username, password } => req.basic(username, password),
        }
    }

    /// JSON Schema of an `auth` field: `{"bearer": token}`, `{"bearerSecret": name}` or
    /// `{"basic": {"username", "password" | "passwordSecret"}}`.
    pub fn schema() -> Value {
        let string = json!({ "type": "string", "minLength": 1 });
        json!({
            "type": "object",
            "description": "{bearer: token} | {bearerSecret: name} | {basic: {username, password | passwordSecret}}",
            "oneOf": [
                {
                    "required": ["bearer"],
                    "properties": { "bearer": string },
                    "additionalProperties": false
                },
                {
                    "required": ["bearerSecret"],
                    "properties": { "bearerSecret": string },
                    "additionalProperties": false
                },
                {
                    "required": ["basic"],
                    "properties": {
                        "basic": {
                            "type": "object",
                            "required": ["username"],
                            "properties": {
                                "username": { "type": "string" },
                                "password": { "type": "string" },
                                "passwordSecret": string
                            },
                            "oneOf": [
                                { "required": ["password"] },
                                { "required": ["passwordSecret"] }
                            ],
                            "additionalProperties": false
                        }
                    },
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// Reads secret `name` (named by input field `field`); an absent secret is a non-retryable
/// error that names both.
pub fn read_secret(field: &str, name: &str) -> Result<String, StepError> {
    crate::secret(name).ok_or_else(|| {
        StepError::fatal(format!(
            "secret `{name}` (field `{field}`) is not available: list it in the step's `secrets` \
             and make sure it is set"
        ))
    })
}

/// Text of a scalar JSON value (strings as is, numbers and booleans printed); `None` for
/// `null`, arrays and objects.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn check_url_field(field: &str, url: &str) -> Result<(), StepError> {
    http::check_url(url).map_err(|e| StepError::fatal(format!("field `{field}`: {e}")))
}

fn prefix(outer: &str, e: StepError) -> StepError {
    StepError {
        message: e
            .message
            .replacen("field `", &format!("field `{outer}."), 1),
        retryable: e.retryable,
    }
}
