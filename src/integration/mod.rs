//! Integrations: where a request goes once every layer has let it through.
//!
//! - **Function**: any tower service. It is what [`Gateway::service`](crate::Gateway::service)
//!   wraps, and what methods without an `integration` setting (or with
//!   `integration: { type: service }`) call.
//! - **HTTP** ([`HttpIntegration`]): a reverse proxy to an upstream URL
//!   template (`http://{stageVariables.host}/pets/{petId}`, `{proxy}` for a
//!   greedy parameter) or a base URL the request path is appended to; pooled
//!   connections (hyper-util), hop-by-hop headers stripped both ways,
//!   `X-Forwarded-For`/`-Proto`/`-Host` added, bodies streamed, a timeout
//!   (29 s by default) giving 504 `INTEGRATION_TIMEOUT`, a failed connection
//!   502 `INTEGRATION_FAILURE`. `http://` and `https://` (rustls, the bundled
//!   Mozilla roots or a `tls.ca_file`, a client certificate for backends
//!   that ask; HTTP/2 when the server offers it by ALPN): see [`TlsConfig`].
//! - **Mock** ([`MockIntegration`]): a fixed status, headers and body.
//! - **Lambda** ([`LambdaFunction`]): a function registered with
//!   [`GatewayBuilder::lambda`](crate::gateway::GatewayBuilder::lambda),
//!   called in process as API Gateway calls a Lambda proxy integration; see
//!   [below](#lambda-proxy-integrations).
//!
//! In a config, a stage's `settings` or a method override says which:
//!
//! ```yaml
//! settings:
//!   integration: { type: http, base: "http://{stageVariables.backend}", timeout_ms: 5000 }
//! methods:
//!   /pets/{petId}/GET: { integration: { type: http, url: "http://10.0.0.5/pets/{petId}" } }
//!   /health/GET: { integration: { type: mock, status: 200, body: "ok" } }
//! ```
//!
//! ```
//! use http::{Request, StatusCode};
//! use tollgate::integration::MockIntegration;
//! use tollgate::Body;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mock = MockIntegration::new(StatusCode::ACCEPTED).body("queued");
//! let res = mock.oneshot(Request::post("/jobs").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::ACCEPTED);
//! # }
//! ```
//!
//! # Settings
//!
//! `integration` is a method setting: a stage's `settings` (as in the YAML
//! above) or a method override. It is one choice, replaced whole by the deepest
//! layer that names it, so an override can switch `type`.
//!
//! | `type` | field | unit | default | bounds |
//! |---|---|---|---|---|
//! | `service` (the default) | | | | the inner service given to [`Gateway::service`](crate::Gateway::service) |
//! | `http` | `url` | | | exactly one of `url` and `base`; starts with `http://` or `https://`; `{param}` only after the host, naming a path parameter of every resource it serves; `{stageVariables.NAME}` anywhere |
//! | `http` | `base` | | | as `url`, without a query; the path after the stage and the query are appended |
//! | `http` | `timeout_ms` | milliseconds | `29000` | 50 to 300000 |
//! | `http` | `tls` | `{ ca_file, client_cert, client_key }`, PEM file paths | bundled roots, no client certificate | files readable and parsed when the gateway is built; `client_cert` and `client_key` together ([`TlsConfig`]) |
//! | `mock` | `status` | | `200` | 100 to 599 |
//! | `mock` | `headers` | name: value | `{}` | valid header names and values |
//! | `mock` | `body` | | empty | |
//! | `mock` | `status_from_template` | | `false` | true: the status is the `statusCode` of the body a request template wrote |
//! | `http` | `method` | | the request's | a method (API Gateway's integration `httpMethod`) |
//! | `lambda` | `function` | | | a name registered with `GatewayBuilder::lambda` or `lambda_json` (checked when the gateway is built); exactly one of `function` and `arn` |
//! | `lambda` | `arn` | | | `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`, a remote function ([below](#remote-lambda-functions)) |
//! | `lambda` | `endpoint_url` | | `https://lambda.REGION.amazonaws.com` | with `arn`: `http://` or `https://` and a host, no path |
//! | `lambda` | `timeout_ms` | milliseconds | `29000` | with `arn`: 50 to 300000, the whole answer |
//! | `lambda` | `proxy` | | `true` | `true`: the event in, the response out, no `mapping` on the method; `false`: a custom integration ([below](#non-proxy-lambda-functions)) |
//!
//! API Gateway's integration timeout is 50 ms to 29 s ([`limits`](https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html)); tollgate
//! takes the same default and allows up to 300 s.
//!
//! # Failure modes
//!
//! | case | answer |
//! |---|---|
//! | no response head from the upstream within `timeout_ms` | 504 `INTEGRATION_TIMEOUT` |
//! | the connection or the request fails (refused, reset, or no connection within 10 s when `timeout_ms` is longer) | 502 `INTEGRATION_FAILURE` |
//! | the URL does not parse once stage variables and parameters are filled in | 502 `INTEGRATION_FAILURE` |
//! | the server's certificate does not verify (unknown issuer, wrong host name, expired), or it refuses the client certificate | 502 `INTEGRATION_FAILURE`, the reason logged at `warn` |
//! | the upstream answers, a 5xx included | its response, hop-by-hop headers removed |
//!
//! API Gateway answers a timeout with 504 `INTEGRATION_TIMEOUT` and an
//! integration failure with 504 `INTEGRATION_FAILURE`
//! ([`supported-gateway-response-types`](https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html)); override `INTEGRATION_FAILURE`
//! under `responses` with `status: 504` to match. A `service` integration's
//! responses and errors are the inner service's, passed on unchanged. Config
//! mistakes are refused when the config is read or built:
//!
//! ```text
//! stages.prod.settings.integration: `ftp://x/{nope}`: an integration URL starts with http:// or https://
//! stages.prod.settings.integration.tls: ca_file `/etc/ca.pem`: I/O error: No such file or directory (os error 2)
//! stages.prod.settings.integration.timeout_ms: must be 50 to 300000 (got 10)
//! stages.prod.methods."/pets/GET".integration.url: `/pets` has no path parameter `petId`
//! ```
//!
//! # Lambda proxy integrations
//!
//! `integration: { type: lambda, function: NAME }` calls the function
//! registered under NAME, in process, as API Gateway calls a Lambda proxy
//! integration (set-up-lambda-proxy-integrations.md, payload format 1.0):
//!
//! - The event is [`ApiGatewayProxyRequest`](aws_lambda_events::apigw::ApiGatewayProxyRequest),
//!   AWS's own type: `resource`, `path` (the stage stripped), `httpMethod`,
//!   `headers` (each name's last value) and `multiValueHeaders`,
//!   `queryStringParameters` (last value) and
//!   `multiValueQueryStringParameters`, `pathParameters`,
//!   `stageVariables`, and `requestContext` with `requestId`, `stage`,
//!   `resourcePath`, `path` (as sent), `httpMethod`, `apiId` (the API's
//!   name), `domainName`, `domainPrefix`, `protocol`, `requestTime` and
//!   `requestTimeEpoch`, `identity` (`sourceIp` past trusted proxies,
//!   `userAgent`, `apiKey` and `apiKeyId` when a key was required) and
//!   `authorizer` (`principalId` and the authorizer's context). The body
//!   is read whole (within `limits.max_body` and `limits.body_timeout_ms`):
//!   base64 with `isBase64Encoded: true` when its `Content-Type` is one of
//!   the method's `binary_media_types`, text otherwise.
//! - The function's [`ApiGatewayProxyResponse`](aws_lambda_events::apigw::ApiGatewayProxyResponse)
//!   is the response: `statusCode`, `multiValueHeaders` and then each of
//!   `headers` they lack, the body (base64-decoded when
//!   `isBase64Encoded`).
//! - A function that fails, panics, or answers what API Gateway would not
//!   take (a status outside 100 to 599, a body marked base64 that is not)
//!   is 502 `{"message": "Internal server error"}` (`INTEGRATION_FAILURE`,
//!   the detail logged), as API Gateway answers a malformed Lambda
//!   response.
//!
//! A handler written for API Gateway with the `aws_lambda_events` types
//! (`async fn(ApiGatewayProxyRequest) -> Result<ApiGatewayProxyResponse, E>`)
//! is registered as it is; one written against `lambda_runtime`'s
//! `LambdaEvent<ApiGatewayProxyRequest>` is called with `event.payload`.
//!
//! ```
//! use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
//! use aws_lambda_events::encodings::Body as LambdaBody;
//! use http::{Request, StatusCode};
//! use http_body_util::BodyExt;
//! use tollgate::{Body, Config, Gateway};
//! use tower::{ServiceExt, service_fn};
//!
//! async fn hello(event: ApiGatewayProxyRequest) -> Result<ApiGatewayProxyResponse, std::convert::Infallible> {
//!     let name = event.query_string_parameters.first("name").unwrap_or("world").to_owned();
//!     let mut res = ApiGatewayProxyResponse::default();
//!     res.status_code = 200;
//!     res.body = Some(LambdaBody::Text(format!("hello {name}")));
//!     Ok(res)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let config = Config::from_yaml_str(r#"
//! routes: { /hello: [GET] }
//! stages:
//!   prod: { methods: { /hello/GET: { integration: { type: lambda, function: hello } } } }
//! "#).unwrap();
//! let gateway = Gateway::builder(config).lambda("hello", hello).build().unwrap();
//! let svc = gateway.service(service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
//! }));
//! let res = svc.oneshot(Request::get("/prod/hello?name=tollgate").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello tollgate");
//! # }
//! ```

//! # Remote Lambda functions
//!
//! `integration: { type: lambda, arn: arn:aws:lambda:REGION:ACCOUNT:function:NAME }`
//! sends the same event to Lambda's [`Invoke`](https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html)
//! API (`POST /2015-03-31/functions/ARN/invocations`,
//! `X-Amz-Invocation-Type: RequestResponse`), signed with SigV4 for
//! service `lambda` in the ARN's region by AWS's own signer (`aws-sigv4`),
//! with the credentials given to
//! [`GatewayBuilder::aws_credentials`](crate::gateway::GatewayBuilder::aws_credentials)
//! or else those in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN` when the gateway is built (no profile files,
//! instance roles or web identity: the SDK chain's first link only). The
//! payload is read as a proxy response, as for an in-process function.
//! `endpoint_url` points the calls elsewhere (a local emulator, a VPC
//! endpoint, a test server). Failures are answered as API Gateway answers
//! its clients:
//!
//! | the call | answer |
//! |---|---|
//! | 200 with `X-Amz-Function-Error` (the function threw), or a payload that is not a proxy response | 502 `{"message": "Internal server error"}` |
//! | 429 `TooManyRequestsException` (the function is throttled) | 500 `{"message": "Internal server error"}`, as API Gateway maps Lambda's 429 |
//! | another status (no such function, a refused signature, Lambda's own faults), a failed connection, no credentials | 500 `{"message": "Internal server error"}` |
//! | no whole answer within `timeout_ms` | 504 `{"message": "Endpoint request timed out"}` |
//!
//! The reason is logged at `warn`; no message carries a credential. The
//! answers are the `INTEGRATION_FAILURE` and `INTEGRATION_TIMEOUT` gateway
//! responses, so `responses` can change their bodies. An OpenAPI
//! `aws_proxy` integration whose URI names a function ARN imports as a
//! remote function unless the function is registered in process
//! ([`ImportOptions::functions`](crate::openapi::ImportOptions::functions)).
//!
//! ```yaml
//! stages:
//!   prod:
//!     methods:
//!       /orders/POST:
//!         integration:
//!           type: lambda
//!           arn: arn:aws:lambda:eu-west-1:123456789012:function:orders
//!           timeout_ms: 10000
//! ```
//!
//! # Non-proxy Lambda functions
//!
//! `proxy: false` makes a Lambda integration API Gateway's custom one
//! (`AWS`, handle-errors-in-lambda-integration.md): the function gets
//! the body the method's request mapping made (its `templates`, or the
//! request's body as it came under `passthrough`; `{}` when it is empty)
//! and its answer is an integration response, mapped by the method's
//! `mapping.responses` like an HTTP backend's, with the same template
//! languages:
//!
//! - a function that returns: its result, `200`, `application/json`; the
//!   response without `selection_pattern` takes it (the default), or one
//!   whose pattern matches the empty string (`.*`), as API Gateway matches
//!   a success's null error message;
//! - a function that throws: Lambda's error document
//!   (`{"errorMessage": ..., "errorType": ...}`), its `errorMessage` matched
//!   whole against each `selection_pattern` in order, else the default;
//!   with neither, 502 `{"message": "Internal server error"}` (API
//!   Gateway's invalid configuration);
//! - no answer (a panic, a timeout, throttling, a failed call): as for a
//!   proxy integration.
//!
//! In process, register the function with
//! [`GatewayBuilder::lambda_json`](crate::gateway::GatewayBuilder::lambda_json)
//! (any JSON in, any JSON out, an error's `Display` as its
//! `errorMessage`); a proxy handler registered with `lambda` serves too,
//! the payload read as an event. Remotely, `arn` as above: the payload is
//! sent as it is, and `X-Amz-Function-Error` marks the answer as the error
//! document. An OpenAPI `aws` integration whose URI names a Lambda
//! function imports as one, its templates and responses with it, and
//! exports back as `aws`.
//!
//! ```yaml
//! stages:
//!   prod:
//!     methods:
//!       /pets/{id}/GET:
//!         integration: { type: lambda, function: pets, proxy: false }
//!         mapping:
//!           request:
//!             templates: { application/json: '{"id": "{{ input.params("id") }}"}' }
//!           responses:
//!             - { selection_pattern: "Not found: .*", status: 404 }
//!             - { status: 200 }
//! ```

mod config;
mod dispatch;
mod http;
mod invoke;
mod lambda;
mod mock;
mod tls;

pub use self::config::IntegrationConfig;
pub(crate) use self::config::Lambdas;
pub(crate) use self::config::endpoint_ok;
pub(crate) use self::config::per_endpoint;
pub(crate) use self::dispatch::Integration;
pub use self::dispatch::{Integrations, ResponseFuture};
pub(crate) use self::http::new_client;
pub(crate) use self::http::shown as shown_url;
pub use self::http::{DEFAULT_TIMEOUT, HttpIntegration, UrlTemplateError};
pub use self::invoke::AwsCredentials;
pub(crate) use self::invoke::function_region;
pub(crate) use self::lambda::IntegrationSelection;
pub use self::lambda::{LambdaFunction, LambdaResult};
pub use self::mock::MockIntegration;
pub(crate) use self::tls::{HttpClient, chain as error_chain, client as tls_client};
pub use self::tls::{TlsConfig, TlsError};
