//! OpenAPI import and export: an API Gateway export (OpenAPI 3.0 or Swagger 2.0, JSON
//! or YAML, with its `x-amazon-apigateway-*` extensions) read into a
//! [`Config`](crate::Config), as API Gateway's import does it
//! (api-gateway-import-api.md).
//!
//! ```
//! use tollgate::openapi::{import, ImportOptions};
//!
//! let export = r#"
//! openapi: 3.0.1
//! info: { title: petstore, version: "1" }
//! paths:
//!   /pets/{petId}:
//!     get:
//!       security: [{ api_key: [] }]
//!       x-amazon-apigateway-integration:
//!         type: http
//!         httpMethod: GET
//!         uri: "http://${stageVariables.host}/pets/{petId}"
//!         requestParameters: { integration.request.path.petId: method.request.path.petId }
//!         responses:
//!           default:
//!             statusCode: "200"
//!             responseTemplates:
//!               application/json: '{"pet": $input.json(''$'')}'
//! components:
//!   securitySchemes:
//!     api_key: { type: apiKey, name: x-api-key, in: header }
//! "#;
//! let imported = import(export, &ImportOptions::default()).unwrap();
//! assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
//! let config = imported.config;
//! assert_eq!(config.routes["/pets/{petId}"], ["GET"]);
//! let method = &config.stages["prod"].methods["/pets/{petId}/GET"];
//! assert_eq!(method.api_key_required, Some(true));
//! ```
//!
//! What is read (each `x-amazon-apigateway-integration` field as API
//! Gateway's extension reference defines it):
//! - `paths` and their methods (`get` ... `patch`, and
//!   `x-amazon-apigateway-any-method` as `ANY`), under the base path as
//!   [`BasePath`] says;
//! - `type: http` and `http_proxy` as an HTTP integration to `uri` (its
//!   `{param}`s and `${stageVariables.NAME}`s kept), `timeoutInMillis`,
//!   `requestParameters`, `requestTemplates` (VTL), `passthroughBehavior`,
//!   `contentHandling`, `responses` (the key is the selection pattern,
//!   `default` none; `statusCode`, `responseParameters`,
//!   `responseTemplates`, `contentHandling`); `http_proxy` takes no
//!   templates, as in API Gateway;
//! - `type: mock`: a mock integration whose status is the request
//!   template's `statusCode` (200 when it names none), its integration
//!   responses as above;
//! - `security` (the operation's, else the document's): an `apiKey`
//!   scheme makes the method require a key; one with
//!   `x-amazon-apigateway-authtype: awsSigv4` SigV4; one with
//!   `x-amazon-apigateway-authorizer` a custom authorizer of that name
//!   (its `identitySource` read, its implementation registered with
//!   `GatewayBuilder::authorizer`);
//! - `x-amazon-apigateway-binary-media-types` and
//!   `x-amazon-apigateway-minimum-compression-size`, API-wide;
//! - request validation ([`validate`](crate::validate)):
//!   `x-amazon-apigateway-request-validators` as `validators`, the
//!   document's `x-amazon-apigateway-request-validator` as the API's
//!   default and each operation's as its own; `definitions` (Swagger 2.0)
//!   or `components.schemas` (OpenAPI 3) as `models`, `$ref`s between them
//!   kept; the operation's and its path item's `parameters` (path, query,
//!   header; `$ref`s followed) as `request_parameters`; the body's schema
//!   per media type (Swagger 2.0's `in: body` for each `consumes` type,
//!   OpenAPI 3's `requestBody.content`) as `request_models`, an inline
//!   schema becoming a model named after the method and path. A model that
//!   does not compile (and the methods' references to it), a validator the
//!   document does not declare, and cookie or form parameters are
//!   warnings, left out;
//! - `x-amazon-apigateway-gateway-responses` as `responses`;
//! - `x-amazon-apigateway-policy` as the API-wide `policy` on source
//!   addresses (a deny statement that cannot be read refuses the document);
//! - `x-tollgate-mapping`, tollgate's own export of a mapping API Gateway's
//!   extension cannot say whole;
//! - `type: aws_proxy` to a Lambda function named in
//!   [`ImportOptions::functions`] (registered with the builder) as a Lambda
//!   proxy integration in process; to any other function ARN as a remote
//!   Lambda integration (`integration: { type: lambda, arn }`, with the
//!   extension's `timeoutInMillis`).
//!
//! A method without `x-amazon-apigateway-integration` is served by the
//! service the gateway wraps (tollgate's `integration: service`). As in
//! API Gateway, integrations belong to the API: [`import_into`] gives every
//! stage of the config the document's methods.
//!
//! Everything else API Gateway would honour and tollgate does not yet
//! (`aws` integrations, `aws_proxy` whose function a stage variable names,
//! VPC links, resource policy
//! statements beyond source addresses, `x-amazon-apigateway-cors`, which
//! belongs to HTTP APIs) is an [`ImportWarning`] with its JSON path, never
//! a silent drop; `fail_on_warnings` makes any warning an error. The
//! method then keeps serving through the service the gateway wraps.

//! # Export
//!
//! [`export`] writes one stage of a config as OpenAPI 3.0.1 or Swagger 2.0
//! ([`ExportOptions`]), with or without API Gateway's extensions; the
//! README's "OpenAPI import" section lists what is written and what is a
//! [`ExportWarning`]. Imported back with [`import_into`], an export serves
//! the same routes with the same responses (`tests/openapi.rs`).
//!
//! ```
//! use tollgate::Config;
//! use tollgate::openapi::{export, ExportOptions, ExportType};
//!
//! let config = Config::from_yaml_str(r#"
//! routes: { /ping: [GET] }
//! stages:
//!   prod: { methods: { /ping/GET: { integration: { type: mock, status: 200, body: '{"pong": true}' } } } }
//! "#).unwrap();
//! let mut options = ExportOptions::default();
//! options.export_type = ExportType::Swagger;
//! let exported = export(&config, "prod", &options).unwrap();
//! assert_eq!(exported.document["basePath"], "/prod");
//! assert_eq!(exported.document["paths"]["/ping"]["get"]["x-amazon-apigateway-integration"]["type"], "mock");
//! assert!(exported.to_yaml().starts_with("swagger:"));
//! ```

mod export;
mod import;

pub(crate) use export::definition_method;
pub use export::{ExportOptions, ExportType, ExportWarning, Exported, export};
pub use import::{
    BasePath, ImportError, ImportMode, ImportOptions, ImportWarning, Imported, import, import_into,
};
