//! Resource policies on source addresses: API Gateway's `aws:SourceIp`
//! conditions as `allow` and `deny` lists.

use std::net::IpAddr;

use http::{HeaderMap, Response};
use ipnet::IpNet;

use crate::body::Body;
use crate::context::Endpoint;
use crate::response::{GatewayResponseKind, GatewayResponses};

/// A method's resolved `policy`; see [`PolicyConfig`](super::PolicyConfig)
/// for the setting.
///
/// Decided as API Gateway evaluates a resource policy whose statements
/// carry `aws:SourceIp` conditions
/// ([`apigateway-authorization-flow`](https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-authorization-flow.html)):
///
/// - a client in `deny` is refused first, before SigV4, an authorizer or
///   an API key is looked at: 403 `RESOURCE_POLICY_DENIED`, its message
///   ending " with an explicit deny";
/// - on a method with no authorization, a client outside a non-empty
///   `allow` is refused the same way without those words (an implicit
///   deny);
/// - on a method with SigV4 or an authorizer, `allow` is not a refusal of
///   its own: a caller the authorizer (or signature) admits and the policy
///   neither allows nor denies is admitted, as in API Gateway's "Table A";
///   the authorizer's refusal is its own answer.
///
/// A request whose client address is not known (no
/// [`ClientAddr`](crate::throttle::ClientAddr) on it) is in no list: a
/// non-empty `allow` refuses it on a method with no authorization.
///
/// The message is API Gateway's, with the API's name, stage, method and
/// resource template where API Gateway has the method's ARN: `User:
/// anonymous is not authorized to perform: execute-api:Invoke on resource:
/// petstore/prod/GET/pets/{petId} with an explicit deny`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourcePolicy {
    pub(super) allow: Vec<IpNet>,
    pub(super) deny: Vec<IpNet>,
}

/// What the policy says of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// In `allow`, or `allow` is empty, and not in `deny`.
    Allowed,
    /// In neither list, `allow` not empty.
    NotAllowed,
    /// In `deny`.
    Denied,
}

impl ResourcePolicy {
    /// What the lists say of `client` (`None`: not known).
    pub(crate) fn verdict(&self, client: Option<IpAddr>) -> Verdict {
        let within = |list: &[IpNet]| client.is_some_and(|ip| list.iter().any(|n| n.contains(&ip)));
        if within(&self.deny) {
            Verdict::Denied
        } else if self.allow.is_empty() || within(&self.allow) {
            Verdict::Allowed
        } else {
            Verdict::NotAllowed
        }
    }

    /// The refusal for a request to `endpoint` from `peer` (with `headers`,
    /// for a trusted proxy's `X-Forwarded-For`), or `None` to go on.
    /// `authorized`: the method has SigV4 or an authorizer, which decides
    /// what the policy neither allows nor denies.
    pub(crate) fn check(
        &self,
        endpoint: &Endpoint,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        trusted: &[IpNet],
        api: &str,
        responses: &GatewayResponses,
    ) -> Option<Response<Body>> {
        let client = crate::throttle::client_ip(peer, headers, trusted);
        let authorized = endpoint.settings().authorization != crate::auth::Authorization::None;
        let explicit = match self.verdict(client) {
            Verdict::Allowed => return None,
            Verdict::NotAllowed if authorized => return None,
            Verdict::NotAllowed => false,
            Verdict::Denied => true,
        };
        let message = format!(
            "User: anonymous is not authorized to perform: execute-api:Invoke on resource: {api}/{}/{}{}{}",
            endpoint.stage(),
            endpoint.method_name(),
            endpoint.resource(),
            if explicit {
                " with an explicit deny"
            } else {
                ""
            }
        );
        tracing::debug!(layer = "policy", decision = "reject", explicit, client = ?client, "resource policy refused the client");
        Some(responses.respond_with_message(GatewayResponseKind::ResourcePolicyDenied, &message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Issues, PathBuf};
    use crate::edge::PolicyConfig;

    fn policy(allow: &[&str], deny: &[&str]) -> ResourcePolicy {
        let c = PolicyConfig {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        };
        c.resolve()
    }

    #[test]
    fn deny_wins_allow_limits_and_addresses_are_blocks() {
        let p = policy(&["203.0.113.0/24", "2001:db8::/32"], &["203.0.113.7"]);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(p.verdict(ip("203.0.113.9")), Verdict::Allowed);
        assert_eq!(p.verdict(ip("203.0.113.7")), Verdict::Denied);
        assert_eq!(p.verdict(ip("198.51.100.1")), Verdict::NotAllowed);
        assert_eq!(p.verdict(ip("2001:db8::1")), Verdict::Allowed);
        assert_eq!(p.verdict(None), Verdict::NotAllowed);
        let open = policy(&[], &["10.0.0.0/8"]);
        assert_eq!(open.verdict(ip("10.1.2.3")), Verdict::Denied);
        assert_eq!(open.verdict(ip("192.0.2.1")), Verdict::Allowed);
        assert_eq!(open.verdict(None), Verdict::Allowed);
    }

    #[test]
    fn entries_that_are_not_addresses_are_config_issues() {
        let c = PolicyConfig {
            allow: vec!["10.0.0.0/33".into(), "::1".into()],
            deny: vec!["example.com".into()],
        };
        let mut issues = Issues::default();
        c.check(&PathBuf::default().field("policy"), &mut issues);
        let msgs: Vec<String> = issues.0.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            msgs,
            [
                "policy.allow[0]: `10.0.0.0/33` is not an IP address or CIDR block",
                "policy.deny[0]: `example.com` is not an IP address or CIDR block",
            ]
        );
    }
}
