//! Request and response mapping: API Gateway's parameter mappings, body
//! mapping templates, passthrough rules and integration responses.
//!
//! A [`CompiledMapping`] is compiled once from a [`MappingConfig`] (every target,
//! source, regex and template checked; a template's syntax error names its
//! line) and applied by [`MappingLayer`], alone or, in a
//! [`Gateway`](crate::Gateway), per method from its `mapping` settings.
//!
//! - **Parameters** (`request.set`, `add`, `remove`, `rename`): targets
//!   `integration.request.header|querystring|path.NAME`; sources
//!   `method.request.path|querystring|header.NAME`, `stageVariables.NAME`,
//!   `context.requestId`, `context.stage`, `context.resourcePath`,
//!   `context.httpMethod`, `context.identity.sourceIp`,
//!   `context.identity.apiKeyId`, `context.authorizer.principalId`, or a
//!   `'literal'`. Sources are read from the request as it came; a source
//!   without a value leaves its target alone. Mapped path parameters reach the
//!   integration as [`IntegrationPath`].
//! - **Body templates** (`request.templates`, by content type; a request
//!   without `Content-Type` counts as `application/json`) are VTL, API
//!   Gateway's, when the mapping says `language: vtl` (or the config
//!   `template_language: vtl`; see [`vtl`](crate::vtl)), and otherwise
//!   [minijinja](https://docs.rs/minijinja) templates. minijinja ones see
//!   `input.body`, `input.json('$.path')` (the selection as a JSON string),
//!   `input.path('$.path')` (the selection as a value), `input.params()` and
//!   `input.params('name')` (path, then query, then header), `context.request_id`,
//!   `.stage`, `.resource_path`, `.http_method`, `.source_ip`, `.api_key_id`,
//!   `.principal_id`, `.authorizer` (the authorizer's context), `stage_variables.NAME`,
//!   and `util.escape_javascript`, `url_encode`, `url_decode`, `base64_encode`,
//!   `base64_decode`, `parse_json`. JSONPath is RFC 9535 (`serde_json_path`).
//! - **Passthrough** for a content type without a template: `when_no_match`
//!   (the default: passed on untouched), `when_no_templates` (passed only when
//!   the method has no templates), `never`; otherwise 415 `UNSUPPORTED_MEDIA_TYPE`.
//! - **Integration responses** (`responses`): the first whose
//!   `selection_pattern` matches the backend status whole (`"4\\d\\d"`), else
//!   the one without a pattern, sets the status, headers
//!   (`integration.response.header.NAME` or `'literal'`) and body template
//!   (chosen by the request's `Accept`, then `application/json`, then the first).
//!   A status nothing selects passes unchanged.
//! - **Binary payloads** (the method setting `binary_media_types`, and
//!   `content_handling` on `request` and on each of `responses`): a body
//!   whose type is binary is never rendered by a template and passes as
//!   bytes; `convert_to_text` base64-encodes a binary body (templates then
//!   read the base64 text), `convert_to_binary` base64-decodes a text one.
//!   Without `content_handling` a response is converted as the first media
//!   type of the request's `Accept` asks: a binary body for a text `Accept`
//!   is encoded, a text body for a binary `Accept` decoded. These are API
//!   Gateway's conversion tables, for mapped methods only; see
//!   [`BinaryMediaTypes`]. A method without a mapping passes every body byte
//!   for byte.
//! - **Limits** ([`MappingLimits`]): a body over `max_body` is a 413 (at once
//!   when its declared length is over), one that has not arrived within
//!   `body_timeout` a 408; a JSON body that does not parse is a 400
//!   `BAD_REQUEST_BODY` naming the line and column (nesting deeper than 128
//!   levels included); a template that fails while rendering, runs out of
//!   fuel, writes more than `max_output` or would build a value larger than
//!   `max_output` is a 500 saying only "Internal server error", with the
//!   detail logged under the request id. Templates are rewritten when
//!   compiled so that every operator, filter and call measures what it builds
//!   first; block captures, macros, `{% call %}`, recursive loops and includes
//!   are refused at compile time, as what they capture is outside any limit.
//!   Bodies are read only when a template needs them; otherwise they stream.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use http::{Request, Response};
//! use http_body_util::BodyExt;
//! use tollgate::mapping::{CompiledMapping, MappingConfig, MappingLayer};
//! use tollgate::Body;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let config: MappingConfig = serde_json::from_value(serde_json::json!({
//!     "request": {
//!         "set": { "integration.request.header.x-source": "'tollgate'" },
//!         "templates": { "application/json": "{\"name\": {{ input.json('$.pet.name') }}}" }
//!     }
//! })).unwrap();
//! let mapping = Arc::new(CompiledMapping::new(&config).unwrap());
//! let svc = ServiceBuilder::new()
//!     .layer(MappingLayer::new(mapping))
//!     .service_fn(|req: Request<Body>| async move {
//!         assert_eq!(req.headers()["x-source"], "tollgate");
//!         Ok::<_, Infallible>(Response::new(req.into_body()))
//!     });
//! let req = Request::post("/pets")
//!     .body(Body::from(r#"{"pet": {"name": "Rex", "age": 3}}"#))
//!     .unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, r#"{"name": "Rex"}"#);
//! # }
//! ```
//!
//! # Settings
//!
//! `mapping` is a method setting, in a stage's `settings` or a method override;
//! unlike `throttle` and `cache` it is one choice, replaced whole by the
//! deepest layer that names it (a stage-wide mapping is compiled once). Its
//! bounds are the root sections `mapping_limits` and `limits`.
//!
//! ```yaml
//! stages:
//!   prod:
//!     methods:
//!       /pets/{petId}/GET:
//!         mapping:
//!           request:
//!             set: { integration.request.header.x-pet: method.request.path.petId }
//!             templates: { application/json: '{"id": "{{ input.params("petId") }}"}' }
//!             passthrough: when_no_match
//!             content_handling: convert_to_text
//!           responses:
//!             - { selection_pattern: "4\\d\\d", status: 400 }
//! mapping_limits: { max_body: 10MiB, max_output: 10MiB, fuel: 1000000, max_render_ms: 1000 }
//! limits: { body_timeout_ms: 10000 }
//! ```
//!
//! | field | unit | default | bounds |
//! |---|---|---|---|
//! | `request.set`, `request.add` | target: source | `{}` | targets and sources as listed above |
//! | `request.remove` | targets | `[]` | |
//! | `request.rename` | target: target | `{}` | both of one kind |
//! | `request.templates` | content type: template | `{}` | compiled at build; no block captures, macros, `{% call %}`, recursive loops or includes |
//! | `request.passthrough` | | `when_no_match` | or `when_no_templates`, `never` |
//! | `request.content_handling` | | none | `convert_to_text`, `convert_to_binary` (or `CONVERT_TO_TEXT`, `CONVERT_TO_BINARY`) |
//! | `responses[]` | `{ selection_pattern, status, headers, templates, content_handling }` | `[]` | a pattern is a regex matched against the whole status; `status` 100 to 599; at most one response without a pattern |
//! | `mapping_limits.max_body` | bytes | `10MiB` | more than 0 |
//! | `mapping_limits.max_output` | bytes | `10MiB` | more than 0 |
//! | `mapping_limits.fuel` | minijinja instructions | `1000000` | more than 0 |
//! | `mapping_limits.max_render_ms` | milliseconds | `1000` | 1 to 60000 |
//! | `limits.body_timeout_ms` | milliseconds | `10000` | 1 to 600000 |
//!
//! # Failure modes
//!
//! | case | answer |
//! |---|---|
//! | no template for the content type, and `passthrough` does not pass it | 415 `UNSUPPORTED_MEDIA_TYPE` |
//! | a body a template reads, over `max_body` | 413 `REQUEST_TOO_LARGE` |
//! | a body a template reads, not all there within `limits.body_timeout_ms` | 408 `REQUEST_TIMEOUT` |
//! | a JSON body a template reads that does not parse, or holds too many values | 400 `BAD_REQUEST_BODY` |
//! | a body `convert_to_binary` (or a binary `Accept`) decodes that is not base64 | 500 `DEFAULT_5XX` `{"message":"Internal server error"}`, logged |
//! | a template that fails, on the request or the response side, or a backend body over `max_body` that a response template would read | 500 `DEFAULT_5XX` `{"message":"Internal server error"}`, the detail logged under the request id |
//!
//! Mappings use no store. API Gateway's passthrough behaviors and their 415 are
//! in [`integration-passthrough-behaviors`](https://docs.aws.amazon.com/apigateway/latest/developerguide/integration-passthrough-behaviors.html), its template variables in
//! [`api-gateway-mapping-template-reference`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html). Config mistakes are refused
//! when the config is read or built, each under the path of its `mapping`:
//!
//! ```text
//! stages.prod.settings.mapping.request.set.bogus: `bogus` is not a target (integration.request.header|querystring|path.NAME)
//! stages.prod.settings.mapping.request.templates."application/json": line 1: unexpected end of variable block
//! mapping_limits.fuel: must be more than 0
//! ```

mod binary;
mod bound;
mod compile;
mod config;
pub(crate) mod json;
mod layer;
mod params;
mod run;
mod template;

pub use binary::{BinaryMediaTypes, ContentHandling};
pub(crate) use compile::media_type as media_type_of;
pub use compile::{CompiledMapping, MappingError, MappingIssue, MappingLimits};
pub(crate) use config::MappingCompiler;
pub use config::{
    MappingConfig, MappingLimitsConfig, Passthrough, RequestMappingConfig, ResponseMappingConfig,
    TemplateLanguage,
};
pub(crate) use json::parse_json_for_template;
pub(crate) use layer::MethodMapping;
pub use layer::{Mapping, MappingLayer, ResponseFuture};
pub use params::IntegrationPath;
pub(crate) use params::{
    ContextValue, context_value, decode as decode_query_piece, first_query_value,
    for_each_query_param,
};
pub use template::{escape_javascript, url_decode, url_encode};
