//! The globals a step's script gets on top of Boa's and `boa_runtime`'s: `console`, the
//! CommonJS `module` / `exports` / `require`, `crypto`, `URLSearchParams` (with
//! `URL.prototype.searchParams`) and a `fetch` that accepts the bodies pasted Actions use.
//!
//! They are native functions rather than a JavaScript prelude because Boa's parser costs several
//! microseconds per statement and every step would pay for parsing a prelude; only
//! `URLSearchParams`, which is easiest to write in JavaScript, is parsed, and only when a script
//! first touches it.

use crate::runtime::{SCRIPT_NAME, shared};
use boa_engine::builtins::error::Error as ErrorData;
use boa_engine::builtins::typed_array::TypedArrayKind;
use boa_engine::object::builtins::{JsArrayBuffer, JsTypedArray};
use boa_engine::object::{FunctionObjectBuilder, JsPrototype, ObjectInitializer};
use boa_engine::property::{Attribute, PropertyDescriptor};
use boa_engine::{
    Context, JsError, JsNativeError, JsObject, JsResult, JsString, JsValue, NativeFunction, Source,
    js_string,
};
use hookflow_plugin_sdk::Level;

/// `forms.js`: `URLSearchParams` and `searchParamsOf(url)`.
const FORMS: &str = include_str!("forms.js");

/// Most bytes `crypto.getRandomValues` fills per call, as in browsers.
const MAX_RANDOM_BYTES: usize = 65_536;

/// Objects captured before user code runs, so a script replacing a global cannot change how the
/// step reports its result or its errors.
struct Captured {
    stringify: JsObject,
}

/// The result of evaluating `forms.js`, once a script needed it.
struct Forms(JsObject);

/// Installs the globals. Needs `boa_runtime`'s globals (`fetch`, `Headers`, `URL`) in place.
pub fn install(context: &mut Context) -> JsResult<()> {
    let json = context.intrinsics().objects().json();
    let stringify = json
        .get(js_string!("stringify"), context)?
        .as_callable()
        .ok_or_else(|| JsNativeError::typ().with_message("JSON.stringify is missing"))?;
    context.insert_data(Captured { stringify });

    install_console(context)?;
    install_commonjs(context)?;
    install_crypto(context)?;
    install_forms(context)?;
    install_fetch(context)?;
    Ok(())
}

fn hidden() -> Attribute {
    Attribute::WRITABLE | Attribute::CONFIGURABLE
}

fn arg(args: &[JsValue], i: usize) -> JsValue {
    args.get(i).cloned().unwrap_or_default()
}

// ------------------------------------------------------------------------------ results, errors

/// `JSON.stringify(value)` as captured before user code ran: `Ok(None)` for `undefined`,
/// functions and symbols, an error for BigInts and cycles.
pub fn stringify(value: &JsValue, context: &mut Context) -> JsResult<Option<String>> {
    let stringify = context
        .get_data::<Captured>()
        .map(|c| c.stringify.clone())
        .ok_or_else(|| JsNativeError::error().with_message("hookflow runtime not set up"))?;
    let text = stringify.call(&JsValue::undefined(), std::slice::from_ref(value), context)?;
    Ok(text.as_string().map(|s| s.to_std_string_lossy()))
}

fn is_error(object: &JsObject) -> bool {
    object.downcast_ref::<ErrorData>().is_some()
}

fn text_of(value: &JsValue, context: &mut Context) -> JsResult<String> {
    if let Some(symbol) = value.as_symbol() {
        return Ok(symbol.descriptive_string().to_std_string_lossy());
    }
    Ok(value.to_string(context)?.to_std_string_lossy())
}

/// `(name, message, stack)` of an Error object.
fn error_parts(error: &JsObject, context: &mut Context) -> JsResult<(String, String, String)> {
    let name = match error.get(js_string!("name"), context)? {
        v if v.is_undefined() => "Error".to_string(),
        v => text_of(&v, context)?,
    };
    let message = match error.get(js_string!("message"), context)? {
        v if v.is_undefined() => String::new(),
        v => text_of(&v, context)?,
    };
    let stack = match error.get(js_string!("stack"), context)?.as_string() {
        Some(s) => s.to_std_string_lossy(),
        None => String::new(),
    };
    Ok((name, message, stack))
}

/// The first `step.js:L:C` in `text` (a stack), if any.
pub fn location_in(text: &str) -> Option<&str> {
    let marker = format!("{SCRIPT_NAME}:");
    let start = text.find(&marker)?;
    let rest = &text[start..];
    let end = rest
        .char_indices()
        .skip(marker.len())
        .find(|&(_, c)| !(c.is_ascii_digit() || c == ':'))
        .map_or(rest.len(), |(i, _)| i);
    Some(&rest[..end])
}

/// The step's error message for a thrown value or rejection reason: `message (at step.js:L:C)`
/// for an `Error` (`Name: message` for other error types), `message` for an object that has
/// one, else the value as text.
pub fn describe(error: JsError, context: &mut Context) -> String {
    // Engine errors (a runtime limit) have no JavaScript value; their text carries the stack.
    let text = error.to_string();
    let head = text.lines().next().unwrap_or_default();
    let fallback = match location_in(&text) {
        Some(at) => format!("{head} (at {at})"),
        None => head.to_string(),
    };
    let Ok(value) = error.into_opaque(context) else {
        return fallback;
    };
    describe_value(&value, context).unwrap_or(fallback)
}

fn describe_value(value: &JsValue, context: &mut Context) -> JsResult<String> {
    if let Some(object) = value.as_object() {
        if is_error(&object) {
            let (name, message, stack) = error_parts(&object, context)?;
            let mut text = match (name.as_str(), message.is_empty()) {
                ("Error", true) => "Error".to_string(),
                ("Error", false) => message,
                (_, true) => name,
                (_, false) => format!("{name}: {message}"),
            };
            if let Some(at) = location_in(&stack) {
                text = format!("{text} (at {at})");
            }
            return Ok(text);
        }
        if let Some(message) = object.get(js_string!("message"), context)?.as_string() {
            return Ok(message.to_std_string_lossy());
        }
    }
    text_of(value, context)
}

// ------------------------------------------------------------------------------------- console

/// Node-like: strings as they are, objects as JSON, errors with their stack.
fn show(value: &JsValue, context: &mut Context) -> JsResult<String> {
    if let Some(s) = value.as_string() {
        return Ok(s.to_std_string_lossy());
    }
    if let Some(n) = value.as_bigint() {
        return Ok(format!("{n}n"));
    }
    let Some(object) = value.as_object() else {
        return text_of(value, context);
    };
    if object.is_callable() {
        let name = object
            .get(js_string!("name"), context)?
            .as_string()
            .map(|s| s.to_std_string_lossy())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "(anonymous)".into());
        return Ok(format!("[Function: {name}]"));
    }
    if is_error(&object) {
        let (name, message, stack) = error_parts(&object, context)?;
        let mut text = if message.is_empty() {
            name
        } else {
            format!("{name}: {message}")
        };
        let stack = stack.trim_end();
        if !stack.is_empty() {
            text.push('\n');
            text.push_str(stack);
        }
        return Ok(text);
    }
    match stringify(value, context) {
        Ok(Some(text)) => Ok(text),
        Ok(None) => text_of(value, context),
        Err(e) => Ok(format!(
            "[object that is not JSON: {}]",
            describe(e, context)
        )),
    }
}

/// One `util.format` substitution (`%s %d %i %f %j %o %O %c`).
fn substitute(spec: char, value: &JsValue, context: &mut Context) -> JsResult<String> {
    let number = |value: &JsValue, context: &mut Context, integer: bool| -> JsResult<String> {
        if let Some(n) = value.as_bigint() {
            return Ok(format!("{n}n"));
        }
        let n = value.to_number(context)?;
        let n = if integer { n.trunc() } else { n };
        text_of(&JsValue::from(n), context)
    };
    match spec {
        's' if value.is_string() => show(value, context),
        'd' | 'f' => number(value, context, false),
        'i' => number(value, context, true),
        'j' => Ok(match stringify(value, context) {
            Ok(Some(text)) => text,
            Ok(None) => "undefined".into(),
            Err(_) => "[Circular]".into(),
        }),
        'c' => Ok(String::new()),
        _ => show(value, context),
    }
}

/// `util.format(...args)`: substitutions in a first string argument, then the remaining
/// arguments separated by spaces.
pub fn format(args: &[JsValue], context: &mut Context) -> JsResult<String> {
    let Some(first) = args.first() else {
        return Ok(String::new());
    };
    let mut next = 1;
    let mut out = String::new();
    match first.as_string() {
        Some(template) if args.len() > 1 => {
            let template = template.to_std_string_lossy();
            let mut chars = template.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, chars.peek().copied()) {
                    ('%', Some('%')) => {
                        chars.next();
                        out.push('%');
                    }
                    ('%', Some(spec)) if "sdifjoOc".contains(spec) && next < args.len() => {
                        chars.next();
                        out.push_str(&substitute(spec, &args[next], context)?);
                        next += 1;
                    }
                    _ => out.push(c),
                }
            }
        }
        _ => out = show(first, context)?,
    }
    for value in &args[next..] {
        out.push(' ');
        out.push_str(&show(value, context)?);
    }
    Ok(out)
}

fn write(level: Level, prefix: &str, line: &str, context: &mut Context) -> JsResult<JsValue> {
    shared(context)?.log(level, &format!("{prefix}{line}"));
    Ok(JsValue::undefined())
}

fn install_console(context: &mut Context) -> JsResult<()> {
    let writer = |level: Level, prefix: &'static str| {
        NativeFunction::from_copy_closure(move |_, args, context| {
            let line = format(args, context)?;
            write(level, prefix, &line, context)
        })
    };
    let console = ObjectInitializer::new(context)
        .function(writer(Level::Info, ""), js_string!("log"), 0)
        .function(writer(Level::Info, ""), js_string!("info"), 0)
        .function(writer(Level::Debug, ""), js_string!("debug"), 0)
        .function(writer(Level::Debug, "Trace: "), js_string!("trace"), 0)
        .function(writer(Level::Warn, ""), js_string!("warn"), 0)
        .function(writer(Level::Error, ""), js_string!("error"), 0)
        .function(
            NativeFunction::from_fn_ptr(|_, args, context| {
                let line = show(&arg(args, 0), context)?;
                write(Level::Info, "", &line, context)
            }),
            js_string!("dir"),
            1,
        )
        .function(
            NativeFunction::from_fn_ptr(|_, args, context| {
                if arg(args, 0).to_boolean() {
                    return Ok(JsValue::undefined());
                }
                let rest = args.get(1..).unwrap_or_default();
                let line = if rest.is_empty() {
                    String::new()
                } else {
                    format!(": {}", format(rest, context)?)
                };
                write(Level::Error, "Assertion failed", &line, context)
            }),
            js_string!("assert"),
            0,
        )
        .build();
    context.register_global_property(js_string!("console"), console, hidden())
}

// ------------------------------------------------------------------------------------ CommonJS

fn install_commonjs(context: &mut Context) -> JsResult<()> {
    let exports = JsObject::with_object_proto(context.intrinsics());
    let module = ObjectInitializer::new(context)
        .property(js_string!("exports"), exports.clone(), Attribute::all())
        .build();
    context.register_global_property(js_string!("module"), module, hidden())?;
    context.register_global_property(js_string!("exports"), exports, hidden())?;
    context.register_global_callable(
        js_string!("require"),
        1,
        NativeFunction::from_fn_ptr(|_, args, context| {
            let name = text_of(&arg(args, 0), context)?;
            Err(JsNativeError::error()
                .with_message(format!(
                    "require('{name}') is not supported: hookflow JavaScript steps cannot load \
                     modules"
                ))
                .into())
        }),
    )
}

// -------------------------------------------------------------------------------------- crypto

fn random_bytes(buf: &mut [u8]) -> JsResult<()> {
    getrandom::fill(buf).map_err(|e| {
        JsNativeError::error()
            .with_message(format!("no randomness available: {e}"))
            .into()
    })
}

/// Formats 16 random bytes as a version 4, variant 1 UUID.
pub fn format_uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `crypto.getRandomValues(array)`: fills an integer typed array from WASI random.
fn get_random_values(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let value = arg(args, 0);
    let not_integer_array =
        || JsNativeError::typ().with_message("crypto.getRandomValues needs an integer typed array");
    let array = value
        .as_object()
        .and_then(|o| JsTypedArray::from_object(o).ok())
        .ok_or_else(not_integer_array)?;
    let integer = matches!(
        array.kind(),
        Some(
            TypedArrayKind::Int8
                | TypedArrayKind::Uint8
                | TypedArrayKind::Uint8Clamped
                | TypedArrayKind::Int16
                | TypedArrayKind::Uint16
                | TypedArrayKind::Int32
                | TypedArrayKind::Uint32
                | TypedArrayKind::BigInt64
                | TypedArrayKind::BigUint64
        )
    );
    if !integer {
        return Err(not_integer_array().into());
    }
    let length = array.byte_length(context)?;
    if length > MAX_RANDOM_BYTES {
        return Err(JsNativeError::range()
            .with_message(format!(
                "crypto.getRandomValues fills at most {MAX_RANDOM_BYTES} bytes at a time"
            ))
            .into());
    }
    let offset = array.byte_offset(context)?;
    let buffer = array
        .buffer(context)?
        .as_object()
        .and_then(|o| JsArrayBuffer::from_object(o).ok())
        .ok_or_else(not_integer_array)?;
    let mut data = buffer
        .data_mut()
        .ok_or_else(|| JsNativeError::typ().with_message("the array's buffer is detached"))?;
    let bytes = data
        .get_mut(offset..offset + length)
        .ok_or_else(|| JsNativeError::range().with_message("the array is out of its buffer"))?;
    random_bytes(bytes)?;
    Ok(value)
}

fn install_crypto(context: &mut Context) -> JsResult<()> {
    let crypto = ObjectInitializer::new(context)
        .function(
            NativeFunction::from_fn_ptr(|_, _, _| {
                let mut b = [0u8; 16];
                random_bytes(&mut b)?;
                Ok(JsString::from(format_uuid_v4(b)).into())
            }),
            js_string!("randomUUID"),
            0,
        )
        .function(
            NativeFunction::from_fn_ptr(get_random_values),
            js_string!("getRandomValues"),
            1,
        )
        .build();
    context.register_global_property(js_string!("crypto"), crypto, hidden())
}

// ----------------------------------------------------------------------------- URLSearchParams

/// `forms.js`, evaluated on first use.
fn forms(context: &mut Context) -> JsResult<JsObject> {
    if let Some(forms) = context.get_data::<Forms>() {
        return Ok(forms.0.clone());
    }
    let factory = context
        .eval(Source::from_bytes(FORMS))?
        .as_callable()
        .ok_or_else(|| JsNativeError::typ().with_message("forms.js is not a function"))?;
    let forms = factory
        .call(&JsValue::undefined(), &[], context)?
        .as_object()
        .ok_or_else(|| JsNativeError::typ().with_message("forms.js returned no object"))?;
    context.insert_data(Forms(forms.clone()));
    Ok(forms)
}

/// The `URLSearchParams` class, if a script has loaded it (else no value can be an instance).
fn loaded_search_params_class(context: &mut Context) -> JsResult<Option<JsObject>> {
    let Some(forms) = context.get_data::<Forms>().map(|f| f.0.clone()) else {
        return Ok(None);
    };
    Ok(forms
        .get(js_string!("URLSearchParams"), context)?
        .as_object())
}

fn define_hidden(
    object: &JsObject,
    name: JsString,
    value: JsValue,
    context: &mut Context,
) -> JsResult<()> {
    object.define_property_or_throw(
        name,
        PropertyDescriptor::builder()
            .value(value)
            .writable(true)
            .enumerable(false)
            .configurable(true),
        context,
    )?;
    Ok(())
}

fn install_forms(context: &mut Context) -> JsResult<()> {
    // `URLSearchParams`: an accessor that loads forms.js, then becomes a plain property.
    let get = FunctionObjectBuilder::new(
        context.realm(),
        NativeFunction::from_fn_ptr(|_, _, context| {
            let class = forms(context)?.get(js_string!("URLSearchParams"), context)?;
            let global = context.global_object();
            define_hidden(
                &global,
                js_string!("URLSearchParams"),
                class.clone(),
                context,
            )?;
            Ok(class)
        }),
    )
    .name(js_string!("get URLSearchParams"))
    .build();
    let set = FunctionObjectBuilder::new(
        context.realm(),
        NativeFunction::from_fn_ptr(|_, args, context| {
            let global = context.global_object();
            define_hidden(
                &global,
                js_string!("URLSearchParams"),
                arg(args, 0),
                context,
            )?;
            Ok(JsValue::undefined())
        }),
    )
    .name(js_string!("set URLSearchParams"))
    .length(1)
    .build();
    context.global_object().define_property_or_throw(
        js_string!("URLSearchParams"),
        PropertyDescriptor::builder()
            .get(get)
            .set(set)
            .enumerable(false)
            .configurable(true),
        context,
    )?;

    // `URL.prototype.searchParams`, which Boa's URL leaves unimplemented.
    let url = context.global_object().get(js_string!("URL"), context)?;
    let Some(url) = url.as_object() else {
        return Ok(());
    };
    let Some(prototype) = url.get(js_string!("prototype"), context)?.as_object() else {
        return Ok(());
    };
    let get = FunctionObjectBuilder::new(
        context.realm(),
        NativeFunction::from_fn_ptr(|this, _, context| {
            let of = forms(context)?
                .get(js_string!("searchParamsOf"), context)?
                .as_callable()
                .ok_or_else(|| JsNativeError::typ().with_message("searchParamsOf is missing"))?;
            of.call(&JsValue::undefined(), std::slice::from_ref(this), context)
        }),
    )
    .name(js_string!("get searchParams"))
    .build();
    prototype.define_property_or_throw(
        js_string!("searchParams"),
        PropertyDescriptor::builder()
            .get(get)
            .enumerable(true)
            .configurable(true),
        context,
    )?;
    Ok(())
}

// --------------------------------------------------------------------------------------- fetch

/// True when `value` is an object whose prototype chain holds `class.prototype`.
fn is_instance(value: &JsValue, class: &JsObject, context: &mut Context) -> JsResult<bool> {
    let (Some(object), Some(prototype)) = (
        value.as_object(),
        class.get(js_string!("prototype"), context)?.as_object(),
    ) else {
        return Ok(false);
    };
    let mut current: JsPrototype = object.prototype();
    while let Some(p) = current {
        if JsObject::equals(&p, &prototype) {
            return Ok(true);
        }
        current = p.prototype();
    }
    Ok(false)
}

/// `init` without `body`, plus `extra` properties.
fn init_without_body(
    init: &JsValue,
    extra: &[(JsString, JsValue)],
    context: &mut Context,
) -> JsResult<JsValue> {
    let copy = JsObject::with_object_proto(context.intrinsics());
    copy.copy_data_properties(init, vec![js_string!("body")], context)?;
    for (name, value) in extra {
        copy.set(name.clone(), value.clone(), true, context)?;
    }
    Ok(copy.into())
}

/// Boa's `fetch` takes only string bodies. Pasted Actions also send a `URLSearchParams` form
/// (OAuth token requests, with its content type unless one is set), a number, or an explicit
/// `body: null`; those are turned into what Boa accepts before calling it.
fn fetch_adapter(
    args: &[JsValue],
    original: &JsObject,
    context: &mut Context,
) -> JsResult<JsValue> {
    let input = arg(args, 0);
    let mut init = arg(args, 1);
    if let Some(options) = init.as_object() {
        let body = options.get(js_string!("body"), context)?;
        if body.is_null_or_undefined() {
            if options.has_property(js_string!("body"), context)? {
                init = init_without_body(&init, &[], context)?;
            }
        } else if body.is_number() || body.is_boolean() {
            let text = text_of(&body, context)?;
            init = init_without_body(
                &init,
                &[(js_string!("body"), JsString::from(text).into())],
                context,
            )?;
        } else if let Some(class) = loaded_search_params_class(context)?
            && is_instance(&body, &class, context)?
        {
            let text = body.to_string(context)?;
            let headers_class = context
                .global_object()
                .get(js_string!("Headers"), context)?
                .as_constructor()
                .ok_or_else(|| JsNativeError::typ().with_message("Headers is missing"))?;
            let headers = headers_class.construct(
                &[options.get(js_string!("headers"), context)?],
                None,
                context,
            )?;
            let call = |name: JsString,
                        args: &[JsValue],
                        context: &mut Context|
             -> JsResult<JsValue> {
                headers
                    .get(name, context)?
                    .as_callable()
                    .ok_or_else(|| JsNativeError::typ().with_message("Headers method is missing"))?
                    .call(&headers.clone().into(), args, context)
            };
            let has_type = call(
                js_string!("has"),
                &[js_string!("content-type").into()],
                context,
            )?;
            if !has_type.to_boolean() {
                call(
                    js_string!("set"),
                    &[
                        js_string!("content-type").into(),
                        js_string!("application/x-www-form-urlencoded;charset=UTF-8").into(),
                    ],
                    context,
                )?;
            }
            init = init_without_body(
                &init,
                &[
                    (js_string!("body"), text.into()),
                    (js_string!("headers"), headers.into()),
                ],
                context,
            )?;
        }
    }
    original.call(&JsValue::undefined(), &[input, init], context)
}

fn install_fetch(context: &mut Context) -> JsResult<()> {
    let Some(original) = context
        .global_object()
        .get(js_string!("fetch"), context)?
        .as_callable()
    else {
        return Ok(());
    };
    let fetch = FunctionObjectBuilder::new(
        context.realm(),
        NativeFunction::from_copy_closure_with_captures(
            |_, args, original, context| fetch_adapter(args, original, context),
            original,
        ),
    )
    .name(js_string!("fetch"))
    .length(1)
    .build();
    let global = context.global_object();
    define_hidden(&global, js_string!("fetch"), fetch.into(), context)
}
