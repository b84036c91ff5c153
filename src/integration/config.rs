//! A method's `integration` setting.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;

use super::Integration;
use super::http::{DEFAULT_TIMEOUT, HttpIntegration, UrlTemplate, shown};
use super::mock::MockIntegration;
use super::tls::{HttpClient, TlsConfig, client};
use crate::body::Body;
use crate::config::{Issues, PathBuf};
use crate::response::GatewayResponses;

/// Where a method's requests go.
///
/// `Debug` shows a URL without the password of its user-info, and a mock's
/// header names and body length, not their values.
#[derive(Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum IntegrationConfig {
    /// The inner service given to `Gateway::service` (the default).
    #[default]
    Service,
    /// An upstream HTTP server.
    Http {
        /// A URL template: `http://{stageVariables.host}/pets/{petId}`;
        /// the request's query is appended. Give this or `base`.
        #[serde(default)]
        url: Option<String>,
        /// A base URL the request path (after the stage) and query are
        /// appended to. Give this or `url`.
        #[serde(default)]
        base: Option<String>,
        /// Milliseconds to wait for the response head, `50 ..= 300000`. Default 29000.
        #[serde(default)]
        timeout_ms: Option<u64>,
        /// How `https://` connections are made: a private CA, a client
        /// certificate. Default: the bundled roots, no client certificate.
        #[serde(default)]
        tls: Option<TlsConfig>,
        /// The method the upstream is called with (API Gateway's
        /// integration `httpMethod`). Default: the request's own (`ANY`).
        #[serde(default)]
        method: Option<String>,
    },
    /// A fixed answer.
    Mock {
        /// The status. Default 200.
        #[serde(default)]
        status: Option<u16>,
        /// Response headers.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// The body. Default empty.
        #[serde(default)]
        body: String,
        /// Take the status from the request body's `statusCode`, as API
        /// Gateway's mock takes it from what the request mapping template
        /// wrote (`{"statusCode": 200}`, or one a `#if` chose); `status`
        /// when the body has none (not a JSON object with an integer
        /// `statusCode` of 100 to 599). Set by the OpenAPI import for a
        /// template that computes the status. Default false.
        #[serde(default)]
        status_from_template: bool,
    },
    /// A Lambda proxy integration: API Gateway's event (payload format
    /// 1.0) goes to the handler registered with
    /// [`GatewayBuilder::lambda`](crate::gateway::GatewayBuilder::lambda)
    /// under `function`, in process, or to the remote function `arn`
    /// through Lambda's `Invoke` API; its answer is the response. See
    /// [`LambdaFunction`](super::LambdaFunction) and
    /// [remote functions](super#remote-lambda-functions).
    Lambda {
        /// A registered function's name. Give this or `arn`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        function: Option<String>,
        /// A remote function's ARN,
        /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`. Give
        /// this or `function`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arn: Option<String>,
        /// Where Lambda's `Invoke` API is, for `arn` (a local emulator, a
        /// VPC endpoint): `http://` or `https://` and a host, no path.
        /// Default `https://lambda.REGION.amazonaws.com`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_url: Option<String>,
        /// Milliseconds to wait for a remote function's whole answer,
        /// `50 ..= 300000`. Default 29000, API Gateway's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
        /// `true` (the default): a proxy integration (API Gateway's
        /// `AWS_PROXY`), the function gets the event and answers the
        /// response. `false`: a custom integration (`AWS`), the function
        /// gets the body the method's request mapping made (`{}` when
        /// empty) and its answer goes through the integration responses,
        /// selected by the `errorMessage` when it throws. See
        /// [non-proxy functions](super#non-proxy-lambda-functions).
        #[serde(default = "proxy_default", skip_serializing_if = "is_proxy")]
        proxy: bool,
    },
}

/// A Lambda integration is a proxy unless it says otherwise.
fn proxy_default() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_proxy(proxy: &bool) -> bool {
    *proxy
}

impl fmt::Debug for IntegrationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service => f.write_str("Service"),
            Self::Http {
                url,
                base,
                timeout_ms,
                tls,
                method,
            } => f
                .debug_struct("Http")
                .field("method", method)
                .field("url", &url.as_deref().map(shown))
                .field("base", &base.as_deref().map(shown))
                .field("timeout_ms", timeout_ms)
                .field("tls", tls)
                .finish(),
            Self::Mock {
                status,
                headers,
                body,
                status_from_template,
            } => f
                .debug_struct("Mock")
                .field("status", status)
                .field("status_from_template", status_from_template)
                .field("headers", &headers.keys().collect::<Vec<_>>())
                .field("body_len", &body.len())
                .finish(),
            Self::Lambda {
                function,
                arn,
                endpoint_url,
                timeout_ms,
                proxy,
            } => f
                .debug_struct("Lambda")
                .field("function", function)
                .field("arn", arn)
                .field("endpoint_url", &endpoint_url.as_deref().map(shown))
                .field("timeout_ms", timeout_ms)
                .field("proxy", proxy)
                .finish(),
        }
    }
}

impl crate::config::Overlay for IntegrationConfig {}

impl IntegrationConfig {
    /// Checks the integration written at `path` (its `integration` field).
    /// `route` is the resource's template and path parameters when the
    /// settings belong to one route; stage-wide settings are checked against
    /// each route with [`check_route`](Self::check_route) instead.
    pub(crate) fn check(
        &self,
        path: &PathBuf,
        route: Option<(&str, &[Box<str>])>,
        issues: &mut Issues,
    ) {
        match self {
            IntegrationConfig::Service => {}
            IntegrationConfig::Http {
                url,
                base,
                timeout_ms,
                tls,
                method,
            } => {
                if let Some(m) = method
                    && (m.eq_ignore_ascii_case("ANY")
                        || http::Method::from_bytes(m.as_bytes()).is_err())
                {
                    issues.push(
                        &path.field("method"),
                        format!("`{}` is not a method", m.escape_debug()),
                    );
                }
                // Read now: a file that is missing or not PEM is a config
                // issue, not a 502 on the first request.
                if let Some(tls) = tls
                    && let Err(e) = tls.client_config()
                {
                    issues.push(&path.field("tls"), e.to_string());
                }
                match UrlTemplate::from_config(url.as_deref(), base.as_deref()) {
                    Ok(t) => {
                        if let Some((template, params)) = route {
                            url_params(&t, path, template, params, issues);
                        }
                    }
                    Err(e) => issues.push(path, e.to_string()),
                }
                if let Some(t) = timeout_ms
                    && !(50..=300_000).contains(t)
                {
                    issues.push(
                        &path.field("timeout_ms"),
                        format!("must be 50 to 300000 (got {t})"),
                    );
                }
            }
            IntegrationConfig::Mock {
                status, headers, ..
            } => {
                if let Some(s) = status
                    && !(100..=599).contains(s)
                {
                    issues.push(
                        &path.field("status"),
                        format!("must be an HTTP status, 100 to 599 (got {s})"),
                    );
                }
                for (n, val) in headers {
                    if HeaderName::from_bytes(n.as_bytes()).is_err()
                        || HeaderValue::from_str(val).is_err()
                    {
                        issues.push(
                            &path.field("headers").field(n),
                            "is not a valid header name and value",
                        );
                    }
                }
            }
            IntegrationConfig::Lambda {
                function,
                arn,
                endpoint_url,
                timeout_ms,
                ..
            } => {
                match (function, arn) {
                    (Some(_), Some(_)) | (None, None) => {
                        issues.push(path, "give exactly one of `function` and `arn`");
                    }
                    (Some(function), None) => {
                        if function.is_empty()
                            || function.len() > 170
                            || function.chars().any(char::is_control)
                        {
                            issues.push(
                                &path.field("function"),
                                "a function name is 1 to 170 characters, none a control character",
                            );
                        }
                        if endpoint_url.is_some() || timeout_ms.is_some() {
                            issues.push(
                                path,
                                "`endpoint_url` and `timeout_ms` are for a remote function (`arn`)",
                            );
                        }
                    }
                    (None, Some(arn)) => {
                        if let Err(e) = super::invoke::FunctionArn::parse(arn) {
                            issues.push(&path.field("arn"), e);
                        }
                    }
                }
                if let Some(e) = endpoint_url
                    && !endpoint_ok(e)
                {
                    issues.push(
                        &path.field("endpoint_url"),
                        "an endpoint is http:// or https:// and a host, with no path, query or user",
                    );
                }
                if let Some(t) = timeout_ms
                    && !(50..=300_000).contains(t)
                {
                    issues.push(
                        &path.field("timeout_ms"),
                        format!("must be 50 to 300000 (got {t})"),
                    );
                }
            }
        }
    }

    /// Checks that the path parameters an HTTP integration's URL names exist
    /// on the route `template` (with `params`) it serves. For stage-wide
    /// settings, which know their routes only per endpoint.
    pub(crate) fn check_route(
        &self,
        path: &PathBuf,
        template: &str,
        params: &[Box<str>],
        issues: &mut Issues,
    ) {
        if let IntegrationConfig::Http { url, base, .. } = self
            && let Ok(t) = UrlTemplate::from_config(url.as_deref(), base.as_deref())
        {
            url_params(&t, path, template, params, issues);
        }
    }

    /// The integration a checked config describes: `None` for the inner
    /// service. HTTP integrations share a pooled client per `tls` setting
    /// (`clients` finds or makes it) and answer their failures (502, 504)
    /// with `responses`.
    pub(crate) fn build(
        &self,
        clients: &mut Clients,
        responses: &GatewayResponses,
    ) -> Option<Integration> {
        match self {
            // Lambda integrations are built with their registered functions
            // (`per_endpoint`).
            IntegrationConfig::Service | IntegrationConfig::Lambda { .. } => None,
            IntegrationConfig::Http {
                url,
                base,
                timeout_ms,
                tls,
                method,
            } => {
                // Checked at validation; a URL or TLS file that fails here
                // (a file removed since) is left out.
                let client = clients.get(tls.as_ref().unwrap_or(&TlsConfig::default()))?;
                let mut h =
                    HttpIntegration::from_config(client, url.as_deref(), base.as_deref()).ok()?;
                if let Some(m) = method
                    .as_deref()
                    .and_then(|m| http::Method::from_bytes(m.as_bytes()).ok())
                {
                    h = h.method(m);
                }
                let timeout = timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis);
                Some(Integration::Http(Box::new(
                    h.timeout(timeout).responses(responses.clone()),
                )))
            }
            IntegrationConfig::Mock {
                status,
                headers,
                body,
                status_from_template,
            } => {
                let status = status
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::OK);
                let mut mock = MockIntegration::new(status)
                    .body(body.clone())
                    .status_from_body(*status_from_template);
                for (n, v) in headers {
                    if let (Ok(n), Ok(v)) = (
                        HeaderName::from_bytes(n.as_bytes()),
                        HeaderValue::from_str(v),
                    ) {
                        mock = mock.header(n, v);
                    }
                }
                Some(Integration::Mock(mock))
            }
        }
    }
}

/// Whether `url` is a scheme and an authority only (a trailing `/` allowed).
pub(crate) fn endpoint_ok(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.host().is_some_and(|h| !h.is_empty())
        && uri.authority().is_some_and(|a| !a.as_str().contains('@'))
        && matches!(uri.path(), "" | "/")
        && uri.query().is_none()
}

/// Reports each parameter `url` names that the route does not have.
fn url_params(
    url: &UrlTemplate,
    path: &PathBuf,
    template: &str,
    params: &[Box<str>],
    issues: &mut Issues,
) {
    for p in url.params() {
        if !params.iter().any(|r| **r == *p) {
            issues.push(
                &path.field("url"),
                format!("`{template}` has no path parameter `{p}`"),
            );
        }
    }
}

/// The pooled HTTP clients of one gateway, one per distinct `tls` setting:
/// integrations with the same setting share connections.
#[derive(Default)]
pub(crate) struct Clients(BTreeMap<TlsConfig, HttpClient<Body>>);

impl Clients {
    /// The client for `tls`, made on first use; `None` when its files
    /// cannot be used.
    fn get(&mut self, tls: &TlsConfig) -> Option<HttpClient<Body>> {
        if let Some(c) = self.0.get(tls) {
            return Some(c.clone());
        }
        let c = if tls.is_default() {
            super::new_client()
        } else {
            match client(tls) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "integration TLS setting unusable; method left out");
                    return None;
                }
            }
        };
        self.0.insert(tls.clone(), c.clone());
        Some(c)
    }
}

/// Each endpoint's own integration, sharing pooled HTTP clients; `None`
/// when every method goes to the inner service.
pub(crate) fn per_endpoint<'a>(
    endpoints: impl IntoIterator<Item = &'a std::sync::Arc<crate::context::Endpoint>>,
    responses: &GatewayResponses,
    lambdas: &Lambdas<'_>,
) -> Option<crate::context::PerEndpoint<Integration>> {
    let mut clients = Clients::default();
    let table = crate::context::PerEndpoint::build(endpoints, |e| {
        if let IntegrationConfig::Lambda {
            function,
            arn,
            endpoint_url,
            timeout_ms,
            proxy,
        } = &e.settings().integration
        {
            let (name, f) = match (function, arn) {
                (Some(function), _) => (function, lambdas.functions.get(function)?.clone()),
                (None, Some(arn)) => {
                    let client = clients.get(&TlsConfig::default())?;
                    let timeout = timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis);
                    let invoker = super::invoke::Invoker::new(
                        client,
                        arn,
                        endpoint_url.as_deref(),
                        lambdas.credentials.clone(),
                        timeout,
                    )
                    .ok()?;
                    (
                        arn,
                        super::LambdaFunction::payload(move |payload| {
                            invoker.clone().invoke(payload)
                        }),
                    )
                }
                (None, None) => return None,
            };
            return Some(Integration::Lambda(Box::new(
                super::lambda::LambdaIntegration {
                    name: std::sync::Arc::from(name.as_str()),
                    function: f,
                    binary: e.settings().binary_media_types.clone(),
                    trusted: lambdas.trusted.clone(),
                    responses: responses.clone(),
                    limits: lambdas.limits,
                    api: lambdas.api.clone(),
                    proxy: *proxy,
                    mapping: e.settings().mapping.clone(),
                },
            )));
        }
        e.settings().integration.build(&mut clients, responses)
    });
    (!table.is_empty()).then_some(table)
}

/// What Lambda integrations are built from: the registered functions and
/// the gateway's settings every event reads.
pub(crate) struct Lambdas<'a> {
    pub(crate) functions: &'a std::collections::HashMap<String, super::LambdaFunction>,
    pub(crate) trusted: std::sync::Arc<[ipnet::IpNet]>,
    pub(crate) limits: crate::body::BodyLimits,
    pub(crate) api: std::sync::Arc<str>,
    /// What remote functions sign with: the builder's, else the
    /// environment's.
    pub(crate) credentials: Option<std::sync::Arc<super::AwsCredentials>>,
}
