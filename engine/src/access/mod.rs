//! Who may do what: the caller ([`Principal`]), what a route needs ([`Need`]), and the one
//! decision between them ([`Principal::may`]). Pure: no I/O, no HTTP. The API's guard
//! (`api::guard`) resolves the principal from the request and the target project from the store,
//! then asks here; handlers never check access themselves.
//!
//! Answers follow one rule: a project the caller has no role in does not exist for them (404);
//! a project they see but cannot change at the role the route needs is 403.

pub mod password;
pub mod throttle;
pub mod token;

use crate::store::Role;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The break-glass admin token (`HOOKFLOW_ADMIN_TOKEN` or the generated one).
    AdminToken,
    /// An API key, by its id.
    ApiKey { id: String },
    /// A console session cookie; `csrf` must accompany every state change.
    Session { id: String, csrf: String },
}

impl Via {
    /// The spelling in `GET /v1/auth/me` and audit events.
    pub fn as_str(&self) -> &'static str {
        match self {
            Via::AdminToken => "admin-token",
            Via::ApiKey { .. } => "api-key",
            Via::Session { .. } => "session",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The person (`"admin"` for the admin token, `key:<id>` for an API key).
    pub user_id: String,
    pub email: Option<String>,
    pub via: Via,
    /// `platform-admin` or `auditor`, held platform-wide.
    pub platform_role: Option<Role>,
    /// Project roles: memberships of a person, or the one project of a project key.
    pub projects: Vec<(String, Role)>,
}

/// What a route needs. Declared once per route in the API's route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone: sign-in, invitation acceptance, webhooks (which authenticate per flow).
    Public,
    /// Any authenticated caller (`/auth/me`, the plugin and event-type catalogs).
    SignedIn,
    /// A platform admin: people, projects, platform keys, plugin installs.
    Platform,
    /// The audit log: platform admins and auditors see all of it, project admins their
    /// projects' events.
    AuditLog,
    /// At least `Role` in the project of `Target`.
    Project(Role, Target),
}

/// Where a project route finds its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `{id}` in the path is a flow.
    Flow,
    /// `{id}` in the path is a run.
    Run,
    /// `{id}` in the path is an event destination (which may be platform-wide).
    Destination,
    /// `{id}` in the path is the project.
    PathProject,
    /// `?projectId=`, else the caller's own project (a project key's, a person's only one),
    /// else the default project.
    QueryProject,
    /// Like `QueryProject`, but without `?projectId=` a platform admin acts platform-wide
    /// (creating a PLATFORM destination).
    QueryOrPlatform,
    /// A list: filtered to every project where the caller holds the role.
    Visible,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 404: the caller may not know the target exists.
    Hidden,
    /// 403: the caller sees the target but lacks the role; says which role it needs.
    Forbidden(String),
}

impl Principal {
    /// The break-glass admin token's principal.
    pub fn admin_token() -> Principal {
        Principal {
            user_id: "admin".into(),
            email: None,
            via: Via::AdminToken,
            platform_role: Some(Role::PlatformAdmin),
            projects: Vec::new(),
        }
    }

    pub fn is_platform_admin(&self) -> bool {
        self.platform_role == Some(Role::PlatformAdmin)
    }

    /// The caller's role in `project`: a platform admin is admin everywhere.
    pub fn role_in(&self, project: &str) -> Option<Role> {
        if self.is_platform_admin() {
            return Some(Role::Admin);
        }
        self.projects
            .iter()
            .find(|(p, _)| p == project)
            .map(|(_, r)| *r)
    }

    /// May the caller act at `needed` in `project`?
    pub fn may(&self, project: &str, needed: Role) -> Result<(), Denied> {
        let held = self.role_in(project).ok_or(Denied::Hidden)?;
        if held.project_rank() >= needed.project_rank() {
            Ok(())
        } else {
            Err(Denied::Forbidden(format!(
                "this needs the {needed} role in project {project}; you have {held}"
            )))
        }
    }

    /// Projects where the caller holds at least `needed`; `None` means every project.
    pub fn projects_at(&self, needed: Role) -> Option<Vec<String>> {
        if self.is_platform_admin() {
            return None;
        }
        Some(
            self.projects
                .iter()
                .filter(|(_, r)| r.project_rank() >= needed.project_rank())
                .map(|(p, _)| p.clone())
                .collect(),
        )
    }

    /// Whose audit events the caller reads: `None` all (platform admin, auditor), else the
    /// projects they administer; `Err` when none.
    pub fn audit_scope(&self) -> Result<Option<Vec<String>>, Denied> {
        if self.platform_role.is_some() {
            return Ok(None);
        }
        let projects = self.projects_at(Role::Admin).unwrap_or_default();
        if projects.is_empty() {
            Err(Denied::Forbidden(
                "reading the audit log needs the auditor or platform-admin role, or admin in a project".into(),
            ))
        } else {
            Ok(Some(projects))
        }
    }

    /// The project a `QueryProject` route acts in when no `?projectId=` is given.
    pub fn own_project(&self) -> String {
        match (&self.via, self.projects.as_slice()) {
            (_, [(only, _)]) if !self.is_platform_admin() => only.clone(),
            _ => "default".into(),
        }
    }

    /// Does the caller pass a route's need that names no project? Project needs are decided
    /// by the guard with [`Principal::may`] once it knows the project.
    pub fn passes(&self, need: Need) -> Result<(), Denied> {
        match need {
            Need::Public | Need::SignedIn | Need::Project(..) => Ok(()),
            Need::Platform if self.is_platform_admin() => Ok(()),
            Need::Platform => Err(Denied::Forbidden(
                "this needs the platform-admin role".into(),
            )),
            Need::AuditLog => self.audit_scope().map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(projects: &[(&str, Role)]) -> Principal {
        Principal {
            user_id: "u1".into(),
            email: Some("a@example.com".into()),
            via: Via::ApiKey { id: "k".into() },
            platform_role: None,
            projects: projects.iter().map(|(p, r)| (p.to_string(), *r)).collect(),
        }
    }

    #[test]
    fn foreign_projects_are_hidden_and_low_roles_forbidden() {
        let p = member(&[("a", Role::Operator)]);
        assert_eq!(p.may("a", Role::Viewer), Ok(()));
        assert_eq!(p.may("a", Role::Operator), Ok(()));
        assert!(matches!(
            p.may("a", Role::Editor),
            Err(Denied::Forbidden(_))
        ));
        assert_eq!(p.may("b", Role::Viewer), Err(Denied::Hidden));
        assert_eq!(Principal::admin_token().may("b", Role::Admin), Ok(()));
    }

    #[test]
    fn lists_and_the_audit_log_are_scoped() {
        let p = member(&[("a", Role::Admin), ("b", Role::Viewer)]);
        assert_eq!(
            p.projects_at(Role::Viewer),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(p.projects_at(Role::Editor), Some(vec!["a".into()]));
        assert_eq!(p.audit_scope(), Ok(Some(vec!["a".into()])));
        assert!(member(&[("b", Role::Editor)]).audit_scope().is_err());
        let auditor = Principal {
            platform_role: Some(Role::Auditor),
            ..member(&[])
        };
        assert_eq!(auditor.audit_scope(), Ok(None));
        assert!(auditor.passes(Need::Platform).is_err());
        assert_eq!(auditor.may("a", Role::Viewer), Err(Denied::Hidden));
        assert_eq!(Principal::admin_token().projects_at(Role::Admin), None);
    }

    #[test]
    fn own_project_is_the_only_membership_or_the_default() {
        assert_eq!(member(&[("a", Role::Viewer)]).own_project(), "a");
        assert_eq!(
            member(&[("a", Role::Viewer), ("b", Role::Viewer)]).own_project(),
            "default"
        );
        assert_eq!(Principal::admin_token().own_project(), "default");
    }
}
