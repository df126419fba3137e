//! `allowedRecipients` patterns: which addresses an e-mail step may write to. Parsed when a flow
//! is saved (so a bad pattern is a validation error) and matched by the mail capability.

/// One `allowedRecipients` entry: an exact address (`ops@example.com`), every address of a
/// domain (`*@example.com`) or of its subdomains (`*@*.example.com`). Case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientPattern {
    Exact(String),
    Domain(String),
    Subdomains(String),
}

impl RecipientPattern {
    /// Parses a pattern, saying what is wrong with a bad one (shown at flow save time).
    pub fn parse(text: &str) -> Result<RecipientPattern, String> {
        let lower = text.trim().to_ascii_lowercase();
        let Some((local, domain)) = lower.rsplit_once('@') else {
            return Err(format!(
                "{text:?} is not an address or `*@domain` pattern (no @)"
            ));
        };
        if local.is_empty() || domain.is_empty() {
            return Err(format!("{text:?} needs something on both sides of @"));
        }
        let check_domain = |d: &str| {
            let valid = d.contains('.')
                && d.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if valid {
                Ok(())
            } else {
                Err(format!("{text:?}: {d:?} is not a domain name"))
            }
        };
        if local == "*" {
            if let Some(base) = domain.strip_prefix("*.") {
                check_domain(base)?;
                return Ok(RecipientPattern::Subdomains(base.to_string()));
            }
            check_domain(domain)?;
            return Ok(RecipientPattern::Domain(domain.to_string()));
        }
        if local.contains('*') || domain.contains('*') {
            return Err(format!(
                "{text:?}: `*` is allowed only as `*@domain` or `*@*.domain`"
            ));
        }
        check_domain(domain)?;
        Ok(RecipientPattern::Exact(lower))
    }

    /// Whether the bare address `address` (no display name) matches.
    pub fn matches(&self, address: &str) -> bool {
        let address = address.to_ascii_lowercase();
        let Some((_, domain)) = address.rsplit_once('@') else {
            return false;
        };
        match self {
            RecipientPattern::Exact(exact) => address == *exact,
            RecipientPattern::Domain(d) => domain == d,
            RecipientPattern::Subdomains(base) => domain
                .strip_suffix(base.as_str())
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_domain_and_subdomains() {
        let exact = RecipientPattern::parse("Ops@Example.com").unwrap();
        assert!(exact.matches("ops@example.com"));
        assert!(!exact.matches("dev@example.com"));
        let domain = RecipientPattern::parse("*@example.com").unwrap();
        assert!(domain.matches("anyone@EXAMPLE.com"));
        assert!(!domain.matches("a@mail.example.com"));
        assert!(!domain.matches("a@badexample.com"));
        let subs = RecipientPattern::parse("*@*.example.com").unwrap();
        assert!(subs.matches("a@mail.example.com"));
        assert!(!subs.matches("a@example.com"));
        assert!(!subs.matches("a@evilexample.com"));
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in [
            "example.com",
            "@example.com",
            "a*@example.com",
            "*@*",
            "a@localhost",
        ] {
            assert!(RecipientPattern::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
