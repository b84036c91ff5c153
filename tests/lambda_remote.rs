//! Remote Lambda proxy integrations (issue 21, item 2): the event goes to
//! Lambda's Invoke API, SigV4-signed; a local server plays that API behind
//! tollgate's own SigV4 verifier (service `lambda`), so a request that
//! reaches the fake function was signed right.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::{json_of, send, serve_tcp};
use tollgate::auth::sigv4::SigV4Identity;
use tollgate::integration::AwsCredentials;
use tollgate::secret::Secret;
use tollgate::{Body, Config, Gateway};
use tower::service_fn;

const AKID: &str = "AKIDLAMBDATEST";
const SECRET: &str = "lambda/secret/0123456789abcdefEXAMPLE";

/// Lambda's Invoke API, as far as these tests need it: the stage is the
/// API version, every call must be signed for `lambda` in `eu-west-1`.
const INVOKE_API: &str = r#"
name: lambda-service
routes:
  /functions/{name}/invocations: [POST]
stages:
  2015-03-31:
    settings: { authorization: sigv4 }
credentials:
  - { access_key_id: AKIDLAMBDATEST, secret_access_key: "lambda/secret/0123456789abcdefEXAMPLE", principal: invoker }
sigv4: { region: eu-west-1, service: lambda }
"#;

/// The functions behind the fake Invoke API, chosen by the name in the
/// ARN: `echo` answers the event it got (and who signed), `throws` fails as
/// a function that raised, `throttled` as Lambda at its concurrency limit,
/// `slow` too late, `garbled` with a payload that is not a proxy response.
fn functions()
-> impl tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<Body>| async move {
        let signer = req
            .extensions()
            .get::<SigV4Identity>()
            .map(|i| i.principal.clone())
            .unwrap_or_default();
        let invocation = req
            .headers()
            .get("x-amz-invocation-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let path = req.uri().path().to_owned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let name = path
            .rsplit("%3A")
            .next()
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("");
        let json = |status: u16, v: Value| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap()
        };
        Ok(match name {
            "echo" => json(
                200,
                json!({
                    "statusCode": 201,
                    "multiValueHeaders": { "x-signer": [signer], "x-invocation": [invocation] },
                    "body": json!({ "path": path, "event": event }).to_string(),
                }),
            ),
            "throws" => {
                let mut r = json(
                    200,
                    json!({"errorMessage": "boom", "errorType": "Error", "stackTrace": []}),
                );
                r.headers_mut()
                    .insert("x-amz-function-error", "Unhandled".parse().unwrap());
                r
            }
            "throttled" => {
                let mut r = json(429, json!({"message": "Rate Exceeded.", "Type": "User"}));
                r.headers_mut().insert(
                    "x-amzn-errortype",
                    "TooManyRequestsException".parse().unwrap(),
                );
                r
            }
            "slow" => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                json(200, json!({"statusCode": 200}))
            }
            "garbled" => json(200, json!(["not", "a", "proxy", "response"])),
            _ => json(404, json!({"message": "Function not found"})),
        })
    })
}

/// The fake Invoke API on a free port: tollgate's verifier in front.
async fn invoke_api() -> String {
    let gw = Gateway::builder(Config::from_yaml_str(INVOKE_API).unwrap())
        .build()
        .unwrap();
    let addr = serve_tcp(gw.service(functions())).await;
    format!("http://{addr}")
}

fn arn(name: &str) -> String {
    format!("arn:aws:lambda:eu-west-1:123456789012:function:{name}")
}

fn gateway(endpoint: &str, secret: &str) -> Gateway {
    let mut methods = String::new();
    for name in ["echo", "throws", "throttled", "slow", "garbled", "missing"] {
        methods.push_str(&format!(
            "      /{name}/POST: {{ integration: {{ type: lambda, arn: \"{}\", endpoint_url: \"{endpoint}\", timeout_ms: 500 }} }}\n",
            arn(name)
        ));
    }
    let config = format!(
        "name: front\nroutes:\n  /echo: [POST]\n  /throws: [POST]\n  /throttled: [POST]\n  /slow: [POST]\n  /garbled: [POST]\n  /missing: [POST]\nstages:\n  prod:\n    variables: {{ tier: gold }}\n    methods:\n{methods}"
    );
    Gateway::builder(Config::from_yaml_str(&config).unwrap())
        .aws_credentials(AwsCredentials::new(AKID, Secret::new(secret)))
        .build()
        .unwrap()
}

fn inner()
-> impl tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("inner")))
    })
}

fn post(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn a_signed_invocation_carries_the_event_and_its_answer_is_the_response() {
    let endpoint = invoke_api().await;
    let gw = gateway(&endpoint, SECRET);
    let (status, headers, body) = send(
        gw.service(inner()),
        post("/prod/echo?q=1&q=2", r#"{"pet":"dog"}"#),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        headers["x-signer"], "invoker",
        "the verifier saw our signature"
    );
    assert_eq!(headers["x-invocation"], "RequestResponse");
    let answer = json_of(&body);
    assert_eq!(
        answer["path"],
        "/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Aecho/invocations",
        "the ARN is one path segment (the fake API's stage, 2015-03-31, stripped)"
    );
    let e = &answer["event"];
    assert_eq!(e["resource"], "/echo");
    assert_eq!(e["httpMethod"], "POST");
    assert_eq!(e["body"], r#"{"pet":"dog"}"#);
    assert_eq!(e["multiValueHeaders"]["x-multi"], json!(["a", "b"]));
    assert_eq!(e["multiValueQueryStringParameters"]["q"], json!(["1", "2"]));
    assert_eq!(e["stageVariables"], json!({"tier": "gold"}));
    assert_eq!(e["requestContext"]["stage"], "prod");
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_verifier_and_answered_500() {
    let endpoint = invoke_api().await;
    let gw = gateway(&endpoint, "not-the-secret");
    let (status, _, body) = send(gw.service(inner()), post("/prod/echo", "{}")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json_of(&body), json!({"message": "Internal server error"}));
}

#[tokio::test]
async fn each_failure_of_the_call_is_answered_as_api_gateway_answers_it() {
    let endpoint = invoke_api().await;
    let gw = gateway(&endpoint, SECRET);
    for (path, want, message) in [
        ("/prod/throws", 502, "Internal server error"),
        ("/prod/garbled", 502, "Internal server error"),
        ("/prod/throttled", 500, "Internal server error"),
        ("/prod/missing", 500, "Internal server error"),
        ("/prod/slow", 504, "Endpoint request timed out"),
    ] {
        let (status, _, body) = send(gw.service(inner()), post(path, "{}")).await;
        assert_eq!(status.as_u16(), want, "{path}");
        assert_eq!(json_of(&body), json!({ "message": message }), "{path}");
    }
}

#[tokio::test]
async fn an_unreachable_lambda_is_500() {
    let dead = support::dead_port().await;
    let gw = gateway(&format!("http://{dead}"), SECRET);
    let (status, _, body) = send(gw.service(inner()), post("/prod/echo", "{}")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json_of(&body), json!({"message": "Internal server error"}));
}

#[test]
fn config_mistakes_are_refused() {
    let issues = |integration: &str| {
        support::issues(&format!(
            "routes: {{ /f: [GET] }}\nstages:\n  prod:\n    methods: {{ /f/GET: {{ integration: {integration} }} }}\n"
        ))
    };
    let both = issues(&format!(
        "{{ type: lambda, function: f, arn: \"{}\" }}",
        arn("f")
    ));
    assert!(
        both.iter()
            .any(|i| i.contains("exactly one of `function` and `arn`")),
        "{both:?}"
    );
    let neither = issues("{ type: lambda }");
    assert!(
        neither.iter().any(|i| i.contains("exactly one")),
        "{neither:?}"
    );
    let bad_arn = issues("{ type: lambda, arn: \"arn:aws:lambda:eu-west-1:12:function:f\" }");
    assert!(
        bad_arn
            .iter()
            .any(|i| i.contains(".arn: a function ARN is")),
        "{bad_arn:?}"
    );
    let bad_endpoint = issues(&format!(
        "{{ type: lambda, arn: \"{}\", endpoint_url: \"ftp://x/y\" }}",
        arn("f")
    ));
    assert!(
        bad_endpoint.iter().any(|i| i.contains(".endpoint_url:")),
        "{bad_endpoint:?}"
    );
    let timeout = issues(&format!(
        "{{ type: lambda, arn: \"{}\", timeout_ms: 10 }}",
        arn("f")
    ));
    assert!(
        timeout.iter().any(|i| i.contains("must be 50 to 300000")),
        "{timeout:?}"
    );
    let local_with_endpoint = issues("{ type: lambda, function: f, endpoint_url: \"http://x\" }");
    assert!(
        local_with_endpoint
            .iter()
            .any(|i| i.contains("are for a remote function")),
        "{local_with_endpoint:?}"
    );
}

/// Credentials come from the standard environment variables when the
/// builder is given none. The variables are set for a child process (this
/// test binary again, running only this test), as a deployment sets them.
#[test]
fn credentials_come_from_the_environment() {
    if std::env::var_os("TOLLGATE_LAMBDA_ENV_CHILD").is_some() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let endpoint = invoke_api().await;
            let config = format!(
                "routes: {{ /echo: [POST] }}\nstages:\n  prod:\n    methods: {{ /echo/POST: {{ integration: {{ type: lambda, arn: \"{}\", endpoint_url: \"{endpoint}\" }} }} }}\n",
                arn("echo")
            );
            let gw = Gateway::builder(Config::from_yaml_str(&config).unwrap())
                .build()
                .unwrap();
            let (status, headers, _) = send(gw.service(inner()), post("/prod/echo", "{}")).await;
            assert_eq!(status, StatusCode::CREATED);
            assert_eq!(headers["x-signer"], "invoker");
        });
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for (secret, ok) in [(SECRET, true), ("wrong", false)] {
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "credentials_come_from_the_environment",
                "--nocapture",
            ])
            .env("TOLLGATE_LAMBDA_ENV_CHILD", "1")
            .env("AWS_ACCESS_KEY_ID", AKID)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env_remove("AWS_SESSION_TOKEN")
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            ok,
            "secret {secret}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[tokio::test]
async fn a_remote_custom_integration_sends_the_mapped_payload_and_selects_on_the_error() {
    let endpoint = invoke_api().await;
    let config = format!(
        r#"
routes: {{ /echo: [POST], /throws: [POST] }}
stages:
  prod:
    settings:
      mapping:
        request: {{ templates: {{ application/json: '{{"wrapped": {{{{ input.json("$") }}}}}}' }} }}
        responses:
          - {{ selection_pattern: "bo+m", status: 418, templates: {{ application/json: '{{"why": {{{{ input.json("$.errorMessage") }}}}}}' }} }}
          - {{ templates: {{ application/json: '{{{{ input.json("$.body") }}}}' }} }}
    methods:
      /echo/POST: {{ integration: {{ type: lambda, arn: "{}", endpoint_url: "{endpoint}", proxy: false }} }}
      /throws/POST: {{ integration: {{ type: lambda, arn: "{}", endpoint_url: "{endpoint}", proxy: false }} }}
"#,
        arn("echo"),
        arn("throws")
    );
    let gw = Gateway::builder(Config::from_yaml_str(&config).unwrap())
        .aws_credentials(AwsCredentials::new(AKID, Secret::new(SECRET)))
        .build()
        .unwrap();
    // The fake `echo` answers `{"body": "{\"path\":..., \"event\": PAYLOAD}"}`:
    // the payload it got is what the request template made.
    let (status, _, body) = send(gw.service(inner()), post("/prod/echo", r#"{"pet":"dog"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_str(json_of(&body).as_str().unwrap()).unwrap();
    assert_eq!(answer["event"], json!({ "wrapped": { "pet": "dog" } }));
    // X-Amz-Function-Error: the error document selects by its message.
    let (status, _, body) = send(gw.service(inner()), post("/prod/throws", "{}")).await;
    assert_eq!(status.as_u16(), 418);
    assert_eq!(json_of(&body), json!({ "why": "boom" }));
}
