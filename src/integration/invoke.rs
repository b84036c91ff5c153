//! Remote Lambda functions: the same event, sent to Lambda's `Invoke` API
//! (`POST /2015-03-31/functions/{FunctionName}/invocations`, synchronous
//! `RequestResponse`), signed with SigV4 by `aws-sigv4`.
//!
//! The answer is the function's payload, read as API Gateway reads a Lambda
//! proxy answer. How each failure of the call is answered follows what API
//! Gateway answers its clients (set-up-lambda-proxy-integrations.md,
//! handle-errors-in-lambda-integration.md, supported-gateway-response-types.md):
//!
//! | the call | answer |
//! |---|---|
//! | 200, the payload an `ApiGatewayProxyResponse` | that response |
//! | 200 with `X-Amz-Function-Error` (the function threw) | 502 `Internal server error` |
//! | 200, a payload that is not a proxy response | 502 `Internal server error` |
//! | 429 `TooManyRequestsException` (the function is throttled) | 500 `Internal server error` |
//! | any other status (no such function, access denied, Lambda's own faults) | 500 `Internal server error` |
//! | refused or reset connection, a certificate that does not verify | 500 `Internal server error` |
//! | no complete answer within `timeout_ms` | 504 `Endpoint request timed out` |
//!
//! Behind a non-proxy integration (`proxy: false`) the payload is the
//! mapped body, the answer is not read as a proxy response, and a function
//! error's document goes to the integration responses.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt;

use super::lambda::FunctionError;
use super::tls::HttpClient;
use crate::body::{Body, BoxError};
use crate::secret::Secret;

/// The largest payload a synchronous invocation returns (Lambda's quota,
/// 6 MB); a longer one is a failed call.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// AWS credentials a remote Lambda integration signs with.
///
/// By default the gateway reads them from the environment as every AWS SDK
/// does first (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for
/// temporary credentials, `AWS_SESSION_TOKEN`) when it is built;
/// [`GatewayBuilder::aws_credentials`](crate::gateway::GatewayBuilder::aws_credentials)
/// sets them instead. `Debug` shows the access key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.is_some())
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    /// Long-term credentials: an access key id and its secret.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: Secret) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token: None,
        }
    }

    /// Adds the session token of temporary credentials (sent as
    /// `X-Amz-Security-Token`).
    pub fn session_token(mut self, token: Secret) -> Self {
        self.session_token = Some(token);
        self
    }

    /// The credentials in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`; `None` when either of the first two is unset or
    /// empty.
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let creds = Self::new(
            var("AWS_ACCESS_KEY_ID")?,
            Secret::new(var("AWS_SECRET_ACCESS_KEY")?),
        );
        Some(match var("AWS_SESSION_TOKEN") {
            Some(t) => creds.session_token(Secret::new(t)),
            None => creds,
        })
    }
}

/// A function ARN taken apart: `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionArn {
    pub(crate) region: String,
    pub(crate) account: String,
}

impl FunctionArn {
    /// Parses `arn`; the message says what is wrong.
    pub(crate) fn parse(arn: &str) -> Result<Self, &'static str> {
        const SHAPE: &str = "a function ARN is arn:aws:lambda:REGION:ACCOUNT:function:NAME, with an optional :QUALIFIER";
        let parts: Vec<&str> = arn.split(':').collect();
        let [
            "arn",
            partition,
            "lambda",
            region,
            account,
            "function",
            name,
            rest @ ..,
        ] = parts.as_slice()
        else {
            return Err(SHAPE);
        };
        let word = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !word(partition)
            || !word(region)
            || account.len() != 12
            || !account.bytes().all(|b| b.is_ascii_digit())
            || !word(name)
            || name.len() > 64
            || rest.len() > 1
            || rest.first().is_some_and(|q| !word(q) || q.len() > 128)
        {
            return Err(SHAPE);
        }
        Ok(Self {
            region: (*region).to_owned(),
            account: (*account).to_owned(),
        })
    }
}

/// The region of a function ARN, `None` when `arn` is not one.
pub(crate) fn function_region(arn: &str) -> Option<String> {
    FunctionArn::parse(arn).ok().map(|a| a.region)
}

/// Why an invocation gave no proxy response; [`LambdaIntegration`](super::lambda::LambdaIntegration)
/// picks the gateway's answer by it.
#[derive(Debug)]
pub(crate) enum InvokeError {
    /// No complete answer within the timeout: 504.
    Timeout,
    /// Lambda throttled the function (429): 500.
    Throttled,
    /// The function ran and threw (`X-Amz-Function-Error`): 502.
    Function(String),
    /// The call failed otherwise: 500.
    Failed(String),
}

impl fmt::Display for InvokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("the invocation timed out"),
            Self::Throttled => f.write_str("Lambda throttled the function (429)"),
            Self::Function(kind) => write!(f, "the function failed ({kind})"),
            Self::Failed(why) => write!(f, "the invocation failed: {why}"),
        }
    }
}

impl std::error::Error for InvokeError {}

/// One remote function: where its `Invoke` API is and how calls are signed.
#[derive(Clone)]
pub(crate) struct Invoker {
    client: HttpClient<Body>,
    /// `https://lambda.REGION.amazonaws.com/2015-03-31/functions/ARN/invocations`,
    /// the ARN percent-encoded as one path segment.
    url: Arc<str>,
    region: Arc<str>,
    credentials: Option<Arc<AwsCredentials>>,
    timeout: Duration,
}

impl Invoker {
    /// The invoker of `arn` (checked with [`FunctionArn::parse`]) at
    /// `endpoint` (default `https://lambda.REGION.amazonaws.com`).
    pub(crate) fn new(
        client: HttpClient<Body>,
        arn: &str,
        endpoint: Option<&str>,
        credentials: Option<Arc<AwsCredentials>>,
        timeout: Duration,
    ) -> Result<Self, &'static str> {
        let parsed = FunctionArn::parse(arn)?;
        let endpoint = match endpoint {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => format!("https://lambda.{}.amazonaws.com", parsed.region),
        };
        // RFC 3986's unreserved characters stay, as the SDKs send them.
        const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let name = percent_encoding::utf8_percent_encode(arn, SEGMENT);
        Ok(Self {
            client,
            url: format!("{endpoint}/2015-03-31/functions/{name}/invocations").into(),
            region: parsed.region.into(),
            credentials,
            timeout,
        })
    }

    /// Invokes the function with `payload` and reads its answer: the
    /// result payload, a [`FunctionError`] with the error document when
    /// the function threw, an [`InvokeError`] when there was no answer.
    pub(crate) async fn invoke(self, payload: Bytes) -> Result<Bytes, BoxError> {
        let req = self.signed(payload.to_vec())?;
        let call = async {
            let res = self
                .client
                .request(req)
                .await
                .map_err(|e| InvokeError::Failed(super::error_chain(&e)))?;
            let (parts, body) = res.into_parts();
            let bytes = http_body_util::Limited::new(body, MAX_PAYLOAD)
                .collect()
                .await
                .map_err(|e| InvokeError::Failed(format!("reading the payload: {e}")))?
                .to_bytes();
            Ok::<_, InvokeError>((parts, bytes))
        };
        let (parts, bytes) = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| InvokeError::Timeout)??;
        let error_type = |h: &str| {
            parts
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>()
        };
        if parts.status == http::StatusCode::TOO_MANY_REQUESTS {
            return Err(InvokeError::Throttled.into());
        }
        if !parts.status.is_success() {
            return Err(InvokeError::Failed(format!(
                "Lambda answered {} {}",
                parts.status.as_u16(),
                error_type("x-amzn-errortype")
            ))
            .into());
        }
        if parts.headers.contains_key("x-amz-function-error") {
            tracing::debug!(kind = %error_type("x-amz-function-error"), "Lambda function error");
            return Err(FunctionError { document: bytes }.into());
        }
        Ok(bytes)
    }

    /// The signed `Invoke` request carrying `payload`.
    fn signed(&self, payload: Vec<u8>) -> Result<Request<Body>, BoxError> {
        let uri: http::Uri = self.url.parse()?;
        let host = match (uri.host(), uri.port_u16()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err("the Lambda endpoint has no host".into()),
        };
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(http::header::HOST, host)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-amz-invocation-type", "RequestResponse")
            .body(())?;
        let Some(creds) = &self.credentials else {
            return Err(InvokeError::Failed(
                "no AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".into(),
            )
            .into());
        };
        let identity = aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose().to_owned(),
            creds.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "tollgate",
        )
        .into();
        // Signing time is the wall clock: AWS refuses a signature more than
        // five minutes off its own.
        #[allow(clippy::disallowed_methods)]
        let now = SystemTime::now();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("lambda")
            .time(now)
            .settings(SigningSettings::default())
            .build()?
            .into();
        let url = req.uri().to_string();
        let signable = SignableRequest::new(
            "POST",
            &url,
            req.headers()
                .iter()
                .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?))),
            SignableBody::Bytes(&payload),
        )?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(&mut req);
        Ok(req.map(|()| Body::full(Bytes::from(payload))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_arns() {
        let ok = FunctionArn::parse("arn:aws:lambda:eu-west-1:123456789012:function:echo").unwrap();
        assert_eq!(ok.region, "eu-west-1");
        assert_eq!(ok.account, "123456789012");
        assert!(
            FunctionArn::parse("arn:aws:lambda:us-east-1:123456789012:function:echo:live").is_ok()
        );
        for bad in [
            "",
            "echo",
            "arn:aws:lambda:us-east-1:1234:function:echo",
            "arn:aws:s3:us-east-1:123456789012:function:echo",
            "arn:aws:lambda:us-east-1:123456789012:function:",
            "arn:aws:lambda:us-east-1:123456789012:function:a/b",
            "arn:aws:lambda:us-east-1:123456789012:function:a:b:c",
            "arn:aws:lambda::123456789012:function:echo",
        ] {
            assert!(FunctionArn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = AwsCredentials::new("AKIDEXAMPLE", Secret::new("wJalrXUtnFEMI"))
            .session_token(Secret::new("token-value"));
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(
            !shown.contains("wJalr") && !shown.contains("token-value"),
            "{shown}"
        );
    }
}
