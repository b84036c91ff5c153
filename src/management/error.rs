//! The management API's errors, as API Gateway sends them: a status, the
//! error type in `x-amzn-ErrorType` (botocore reads the code from it) and
//! `{"message": "..."}`.

use http::{HeaderValue, Response, StatusCode};

use crate::Body;
use crate::auth::sigv4::Refusal;
use crate::gateway::{LifecycleError, LifecycleErrorKind};
use crate::response::GatewayResponseKind;
use crate::store::{StoreError, StoreErrorKind};

/// One refused call: what botocore raises as `ClientError` with
/// `Error.Code == kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    /// API Gateway's error shape name (`NotFoundException`).
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 400 `BadRequestException`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    /// 404 `NotFoundException`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFoundException", message)
    }

    /// 409 `ConflictException`.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "ConflictException", message)
    }

    /// 503 `ServiceUnavailableException`, the store's reason kept out of
    /// the body (it is logged).
    pub(crate) fn unavailable(what: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            format!("{what} is unavailable; try again"),
        )
    }

    /// The response: status, `x-amzn-ErrorType`, JSON body.
    pub(crate) fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({ "message": self.message }).to_string();
        let mut res = Response::new(Body::from(body));
        *res.status_mut() = self.status;
        let headers = res.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        res
    }

    /// A signature refusal as AWS answers it (403 unless the store failed
    /// or the body does not match its declared hash).
    pub(crate) fn from_refusal(r: &Refusal) -> Self {
        use GatewayResponseKind as K;
        let forbidden = StatusCode::FORBIDDEN;
        match (r.kind, r.message.as_deref()) {
            (K::MissingAuthenticationToken, None) => Self::new(
                forbidden,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ),
            (K::MissingAuthenticationToken, Some(m)) => {
                Self::new(forbidden, "IncompleteSignatureException", m)
            }
            (K::UnrecognizedClient, _) => Self::new(
                forbidden,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
            (K::ExpiredToken, m) => Self::new(
                forbidden,
                "InvalidSignatureException",
                m.unwrap_or("Signature expired"),
            ),
            (K::BackendUnavailable, _) => Self::unavailable("the credential store"),
            (K::BadRequestBody, _) => Self::bad_request(
                "The provided x-amz-content-sha256 header does not match what was computed.",
            ),
            (_, m) => Self::new(
                forbidden,
                "InvalidSignatureException",
                m.unwrap_or(
                    "The request signature we calculated does not match the signature you \
                     provided. Check your AWS Secret Access Key and signing method. Consult \
                     the service documentation for details.",
                ),
            ),
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        match e.kind() {
            LifecycleErrorKind::NotFound => Self::not_found(e.message()),
            LifecycleErrorKind::Conflict => Self::conflict(e.message()),
            LifecycleErrorKind::Unavailable => {
                tracing::warn!(error = %e, "management: the deployment store failed");
                Self::unavailable("the deployment store")
            }
            _ => Self::bad_request(e.message()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e.kind() {
            // A store's conflicts say what was wrong with the request
            // (never a secret: see `StoreError::new`).
            StoreErrorKind::Conflict => Self::bad_request(e.message()),
            _ => {
                tracing::warn!(error = %e, "management: a store failed");
                Self::unavailable("a store")
            }
        }
    }
}
