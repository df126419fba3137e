//! Save-time checks of a `javascript` step's code: it parses (a syntax error is reported with
//! its line and column), it sets a handler the plugin can call, and it loads no modules. Only
//! parsing happens here, with the same parser (Boa's) the plugin runs the code with; no
//! JavaScript ever runs in the host.

use boa_ast::expression::access::{PropertyAccess, PropertyAccessField};
use boa_ast::expression::literal::LiteralKind;
use boa_ast::expression::operator::assign::AssignTarget;
use boa_ast::expression::{Expression, Identifier};
use boa_ast::scope::Scope;
use boa_ast::visitor::{VisitWith, Visitor};
use boa_interner::Interner;
use boa_parser::{Error as ParseError, Parser, Source};
use std::ops::ControlFlow;

/// The plugin whose `code` input is checked here.
pub const JAVASCRIPT_PLUGIN: &str = "javascript";

/// The exports the plugin calls, in the order it looks for them.
const HANDLERS: &[&str] = &["onExecuteEventStream", "handler"];

/// Why a piece of code cannot run as a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptProblem(pub String);

/// Checks `code`: it parses as a script, assigns `exports.onExecuteEventStream` or
/// `exports.handler` (also through `module.exports`), and calls no `require`.
pub fn check(code: &str) -> Result<(), ScriptProblem> {
    let mut interner = Interner::default();
    let script = Parser::new(Source::from_bytes(code))
        .parse_script(&Scope::new_global(), &mut interner)
        .map_err(|e| ScriptProblem(syntax_error(&e, code)))?;
    let mut finder = Finder {
        interner: &interner,
        handler: false,
        required: None,
    };
    let _ = script.visit_with(&mut finder);
    if let Some(module) = finder.required {
        return Err(ScriptProblem(format!(
            "require({module}) is not supported: hookflow JavaScript steps cannot load modules \
             (use fetch for HTTP, and the step's input for settings)"
        )));
    }
    if !finder.handler {
        return Err(ScriptProblem(
            "the code must set exports.onExecuteEventStream = async (event, api) => {...} \
             (or exports.handler for a step whose return value is its output)"
                .into(),
        ));
    }
    Ok(())
}

/// `SyntaxError at line L, column C: ...`, the way the plugin reports it at run time.
fn syntax_error(error: &ParseError, code: &str) -> String {
    let position = match error {
        ParseError::Expected { span, .. } | ParseError::Unexpected { span, .. } => {
            Some((span.start().line_number(), span.start().column_number()))
        }
        ParseError::General { position, .. }
        | ParseError::Lex {
            err: boa_parser::lexer::Error::Syntax(_, position),
        } => Some((position.line_number(), position.column_number())),
        ParseError::AbruptEnd => {
            let line = code.lines().count().max(1);
            let column = code.lines().last().map_or(0, |l| l.chars().count()) + 1;
            Some((line as u32, column as u32))
        }
        _ => None,
    };
    let message = match error {
        ParseError::AbruptEnd => {
            "the code ends too early (a bracket or quote is not closed?)".to_string()
        }
        other => other.to_string(),
    };
    match position {
        Some((line, column)) => format!("SyntaxError at line {line}, column {column}: {message}"),
        None => format!("SyntaxError: {message}"),
    }
}

/// Walks the script for handler assignments and `require` calls.
struct Finder<'i> {
    interner: &'i Interner,
    handler: bool,
    required: Option<String>,
}

impl Finder<'_> {
    fn name(&self, id: &Identifier) -> Option<&str> {
        self.interner.resolve_expect(id.sym()).utf8()
    }

    /// `exports` or `module.exports`.
    fn is_exports(&self, expr: &Expression) -> bool {
        match expr {
            Expression::Identifier(id) => self.name(id) == Some("exports"),
            Expression::PropertyAccess(PropertyAccess::Simple(access)) => {
                matches!(access.target(), Expression::Identifier(id) if self.name(id) == Some("module"))
                    && matches!(access.field(), PropertyAccessField::Const(f) if self.name(f) == Some("exports"))
            }
            _ => false,
        }
    }

    fn assigns_handler(&self, target: &AssignTarget) -> bool {
        match target {
            // exports.handler = ..., module.exports.onExecuteEventStream = ...
            AssignTarget::Access(PropertyAccess::Simple(access)) => {
                self.is_exports(access.target())
                    && matches!(access.field(), PropertyAccessField::Const(f)
                        if self.name(f).is_some_and(|n| HANDLERS.contains(&n)))
                    // module.exports = {...} sets whatever the object holds: trusted here, and
                    // the plugin says so at run time if no handler is among them.
                    || matches!(access.target(), Expression::Identifier(id) if self.name(id) == Some("module"))
                        && matches!(access.field(), PropertyAccessField::Const(f) if self.name(f) == Some("exports"))
            }
            _ => false,
        }
    }
}

impl<'ast> Visitor<'ast> for Finder<'_> {
    type BreakTy = ();

    fn visit_expression(&mut self, node: &'ast Expression) -> ControlFlow<()> {
        match node {
            Expression::Assign(assign) if self.assigns_handler(assign.lhs()) => {
                self.handler = true;
            }
            Expression::Call(call) => {
                if let Expression::Identifier(id) = call.function()
                    && self.name(id) == Some("require")
                    && self.required.is_none()
                {
                    let module = match call.args().first() {
                        Some(Expression::Literal(literal)) => match literal.kind() {
                            LiteralKind::String(sym) => self
                                .interner
                                .resolve_expect(*sym)
                                .utf8()
                                .map_or_else(|| "…".into(), |s| format!("'{s}'")),
                            _ => "…".into(),
                        },
                        _ => "…".into(),
                    };
                    self.required = Some(module);
                }
            }
            _ => {}
        }
        node.visit_with(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH0_ACTION: &str = r#"
exports.onExecuteEventStream = async (event, api) => {
  await fetch(event.secrets.URL, {
    method: 'POST',
    headers: { 'X-API-Key': event.secrets.API_KEY },
    body: JSON.stringify(event.message),
  });
};
"#;

    #[test]
    fn the_auth0_action_and_the_plain_form_pass() {
        assert_eq!(check(AUTH0_ACTION), Ok(()));
        assert_eq!(
            check("exports.handler = async (event) => ({ n: 1 });"),
            Ok(())
        );
        assert_eq!(
            check("module.exports.handler = function (event, api) { return 1; };"),
            Ok(())
        );
        assert_eq!(
            check("module.exports = { handler: async () => 2 };"),
            Ok(())
        );
    }

    #[test]
    fn a_syntax_error_names_its_line_and_column() {
        let problem = check("exports.handler = async (event) => {\n  const x = ;\n};").unwrap_err();
        assert!(
            problem.0.starts_with("SyntaxError at line 2, column "),
            "{}",
            problem.0
        );
        let open = check("exports.handler = async (event) => {\n  return 1;\n").unwrap_err();
        assert!(open.0.starts_with("SyntaxError at line "), "{}", open.0);
    }

    #[test]
    fn a_missing_handler_and_require_are_refused() {
        let missing = check("const f = () => 1;").unwrap_err();
        assert!(
            missing.0.contains("exports.onExecuteEventStream"),
            "{}",
            missing.0
        );
        let required =
            check("const axios = require('axios');\nexports.handler = async () => axios.get('x');")
                .unwrap_err();
        assert!(
            required.0.contains("require('axios') is not supported"),
            "{}",
            required.0
        );
        // A property called require is not the CommonJS loader.
        assert_eq!(check("exports.handler = (e) => e.require('x');"), Ok(()));
    }
}
