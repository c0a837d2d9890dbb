//! Who owns a served certificate: the workload's `owner` tag, then the first matching
//! ownership rule (by app, env, Kubernetes namespace, container name, hostname pattern,
//! CIDR), then the default owner.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;

use certfleet_store::NotificationCandidate;
use ipnet::IpNet;
use lettre::Address;

use crate::error::{Error, Result};

/// One `[[owners.rules]]` entry: every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerRule {
    /// The workload's `app` tag, exactly.
    pub app: Option<String>,
    /// The workload's `env` tag, exactly.
    pub env: Option<String>,
    /// The workload's Kubernetes namespace (its `namespace` tag), exactly.
    pub namespace: Option<String>,
    /// A glob (`*`, `?`) matched against the name of the endpoint's container (its
    /// `container` tag: Docker's container name or the Kubernetes container name), or
    /// its id when it has no name.
    pub container: Option<String>,
    /// A glob (`*` any run of characters, `?` one) matched, case-insensitively, against
    /// the reporting host's name and the SNI name probed.
    pub hostname: Option<String>,
    /// A network containing the endpoint's address.
    pub cidr: Option<IpNet>,
    /// Who to tell.
    pub email: String,
    /// Thresholds (days) for what this rule matches, instead of the default ones.
    pub thresholds: Option<Vec<u32>>,
}

/// Whom a candidate's certificate is reported to, and with which thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership<'a> {
    /// The owner's address.
    pub email: &'a str,
    /// The rule's thresholds, when the owner came from a rule that has its own.
    pub thresholds: Option<&'a [u32]>,
}

/// The ownership rules, checked once, in order.
#[derive(Debug, Clone)]
pub struct OwnerRules {
    rules: Vec<OwnerRule>,
    default_owner: String,
}

impl OwnerRules {
    /// Checks every address and that each rule matches on something.
    pub fn new(rules: Vec<OwnerRule>, default_owner: impl Into<String>) -> Result<Self> {
        let default_owner = default_owner.into();
        if !is_address(&default_owner) {
            return Err(Error::setting(
                "notify.default_owner",
                format!("{default_owner:?} is not an email address"),
            ));
        }
        for (index, rule) in rules.iter().enumerate() {
            let setting = format!("owners.rules[{index}]");
            if rule.app.is_none()
                && rule.env.is_none()
                && rule.namespace.is_none()
                && rule.container.is_none()
                && rule.hostname.is_none()
                && rule.cidr.is_none()
            {
                return Err(Error::setting(
                    setting,
                    "set at least one of app, env, namespace, container, hostname, cidr",
                ));
            }
            if !is_address(&rule.email) {
                let message = format!("email {:?} is not an email address", rule.email);
                return Err(Error::setting(setting, message));
            }
        }
        Ok(OwnerRules {
            rules,
            default_owner,
        })
    }

    /// The largest threshold any rule sets.
    pub fn largest_threshold(&self) -> Option<u32> {
        self.rules
            .iter()
            .filter_map(|rule| rule.thresholds.as_ref()?.iter().copied().max())
            .max()
    }

    /// The owner of what `candidate`'s endpoint serves.
    pub fn owner_of<'a>(&'a self, candidate: &'a NotificationCandidate) -> Ownership<'a> {
        self.owner_with(candidate, &mut HashMap::new())
    }

    /// [`OwnerRules::owner_of`], remembering in `checked` which owner tags are addresses
    /// (a decision meets the same few thousand tags a hundred thousand times).
    pub fn owner_with<'a>(
        &'a self,
        candidate: &'a NotificationCandidate,
        checked: &mut HashMap<String, bool>,
    ) -> Ownership<'a> {
        if let Some(tag) = candidate.tags.owner.as_deref().map(str::trim) {
            let valid = match checked.get(tag) {
                Some(valid) => *valid,
                None => *checked
                    .entry(tag.to_owned())
                    .or_insert_with(|| is_address(tag)),
            };
            if valid {
                return Ownership {
                    email: tag,
                    thresholds: None,
                };
            }
        }
        let address = IpAddr::from_str(&candidate.address).ok();
        let rule = self.rules.iter().find(|rule| {
            same(&rule.app, &candidate.tags.app)
                && same(&rule.env, &candidate.tags.env)
                && same(&rule.namespace, &candidate.namespace)
                && rule.container.as_deref().is_none_or(|pattern| {
                    candidate
                        .container
                        .as_deref()
                        .is_some_and(|name| glob(pattern, name))
                })
                && rule
                    .cidr
                    .is_none_or(|net| address.is_some_and(|a| net.contains(&a)))
                && rule.hostname.as_deref().is_none_or(|pattern| {
                    let names = [candidate.hostname.as_deref(), candidate.sni.as_deref()];
                    names.into_iter().flatten().any(|name| glob(pattern, name))
                })
        });
        match rule {
            Some(rule) => Ownership {
                email: &rule.email,
                thresholds: rule.thresholds.as_deref(),
            },
            None => Ownership {
                email: &self.default_owner,
                thresholds: None,
            },
        }
    }
}

fn same(wanted: &Option<String>, actual: &Option<String>) -> bool {
    match wanted {
        None => true,
        Some(wanted) => actual.as_deref() == Some(wanted.as_str()),
    }
}

/// A syntactically valid email address.
pub(crate) fn is_address(text: &str) -> bool {
    Address::from_str(text).is_ok()
}

/// `*` matches any run of characters (dots included), `?` one character; ASCII case is
/// ignored.
fn glob(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let name: Vec<char> = name.to_ascii_lowercase().chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    n = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use certfleet_store::EndpointId;
    use time::macros::datetime;

    fn candidate(app: &str, env: &str, owner: Option<&str>) -> NotificationCandidate {
        NotificationCandidate {
            sha256: "ab".repeat(32),
            not_before: datetime!(2026-01-01 0:00 UTC),
            not_after: datetime!(2027-01-01 0:00 UTC),
            position: 0,
            endpoint_id: EndpointId(1),
            address: "10.1.2.3".into(),
            port: 443,
            sni: Some("api.billing.internal".into()),
            hostname: Some("i-0abc.prod".into()),
            tags: certfleet_store::WorkloadTags {
                app: Some(app.into()),
                env: Some(env.into()),
                owner: owner.map(Into::into),
            },
            namespace: None,
            container: None,
            probed_at: None,
            probe_status: None,
            seen_at: None,
        }
    }

    fn rule(email: &str) -> OwnerRule {
        OwnerRule {
            email: email.into(),
            ..OwnerRule::default()
        }
    }

    fn rules() -> OwnerRules {
        let list = vec![
            OwnerRule {
                app: Some("billing".into()),
                env: Some("prod".into()),
                thresholds: Some(vec![60, 7]),
                ..rule("billing-prod@example.com")
            },
            OwnerRule {
                app: Some("billing".into()),
                ..rule("billing@example.com")
            },
            OwnerRule {
                hostname: Some("*.staging".into()),
                ..rule("staging@example.com")
            },
            OwnerRule {
                cidr: Some("10.1.0.0/16".parse().expect("literal")),
                ..rule("network@example.com")
            },
        ];
        OwnerRules::new(list, "security@example.com").expect("valid rules")
    }

    #[test]
    fn the_owner_tag_comes_first() {
        let rules = rules();
        let tagged = candidate("billing", "prod", Some(" me@example.com "));
        let owner = rules.owner_of(&tagged);
        assert_eq!(owner.email, "me@example.com");
        assert_eq!(owner.thresholds, None);
    }

    #[test]
    fn an_owner_tag_that_is_no_address_falls_through_to_the_rules() {
        let rules = rules();
        let tagged = candidate("billing", "dev", Some("team billing"));
        let owner = rules.owner_of(&tagged);
        assert_eq!(owner.email, "billing@example.com");
    }

    #[test]
    fn the_first_matching_rule_wins_with_its_thresholds() {
        let rules = rules();
        let untagged = candidate("billing", "prod", None);
        let owner = rules.owner_of(&untagged);
        assert_eq!(owner.email, "billing-prod@example.com");
        assert_eq!(owner.thresholds, Some(&[60, 7][..]));
    }

    #[test]
    fn hostname_patterns_and_networks_match() {
        let rules = rules();
        let mut staging = candidate("web", "x", None);
        staging.hostname = Some("I-9.STAGING".into());
        assert_eq!(rules.owner_of(&staging).email, "staging@example.com");
        assert_eq!(
            rules.owner_of(&candidate("web", "x", None)).email,
            "network@example.com"
        );
        let mut elsewhere = candidate("web", "x", None);
        elsewhere.address = "192.168.1.1".into();
        assert_eq!(rules.owner_of(&elsewhere).email, "security@example.com");
    }

    #[test]
    fn namespaces_and_containers_match() {
        let list = vec![
            OwnerRule {
                namespace: Some("payments".into()),
                container: Some("redis*".into()),
                ..rule("payments-cache@example.com")
            },
            OwnerRule {
                namespace: Some("payments".into()),
                ..rule("payments@example.com")
            },
            OwnerRule {
                container: Some("billing-api".into()),
                ..rule("billing-api@example.com")
            },
        ];
        let rules = OwnerRules::new(list, "security@example.com").expect("valid rules");
        let mut pod = candidate("web", "x", None);
        pod.address = "192.168.1.1".into();
        pod.namespace = Some("payments".into());
        pod.container = Some("redis-tls".into());
        assert_eq!(rules.owner_of(&pod).email, "payments-cache@example.com");
        pod.container = Some("web".into());
        assert_eq!(rules.owner_of(&pod).email, "payments@example.com");
        pod.container = None;
        assert_eq!(rules.owner_of(&pod).email, "payments@example.com");
        pod.namespace = Some("Payments".into());
        assert_eq!(
            rules.owner_of(&pod).email,
            "security@example.com",
            "namespaces match exactly"
        );
        let mut docker = candidate("web", "x", None);
        docker.address = "192.168.1.1".into();
        docker.container = Some("billing-api".into());
        assert_eq!(rules.owner_of(&docker).email, "billing-api@example.com");
        docker.container = None;
        assert_eq!(rules.owner_of(&docker).email, "security@example.com");
        let owned = OwnerRule {
            container: Some("*".into()),
            ..rule("c@example.com")
        };
        assert!(OwnerRules::new(vec![owned], "s@example.com").is_ok());
    }

    #[test]
    fn rules_that_match_nothing_or_mail_nobody_are_refused() {
        assert!(OwnerRules::new(vec![rule("a@example.com")], "s@example.com").is_err());
        let bad = OwnerRule {
            app: Some("x".into()),
            ..rule("not an address")
        };
        assert!(OwnerRules::new(vec![bad], "s@example.com").is_err());
        assert!(OwnerRules::new(vec![], "nobody").is_err());
    }

    #[test]
    fn globs_match_like_shell_patterns() {
        assert!(glob("*.example.com", "a.b.example.com"));
        assert!(glob("db-??.prod", "db-01.prod"));
        assert!(!glob("db-??.prod", "db-1.prod"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
    }
}
