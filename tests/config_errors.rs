//! Every config error message and path, pinned byte for byte: moving a
//! config slice between modules must not change one of them (issue 14).

mod support;

use support::issues;

/// (config, every issue it has).
const CASES: &[(&str, &[&str])] = &[
    (
        "routes: {}\nstages: {}\n",
        &[
            "routes: at least one route is required",
            "stages: at least one stage is required",
        ],
    ),
    (
        "routes: { /a: [] }\nstages: { prod: {} }\n",
        &["routes.\"/a\": a route needs at least one method"],
    ),
    (
        "routes: { /a: [GET], /a/{x}: [GET], /a/{y}: [POST] }\nstages: { prod: {} }\n",
        &[
            "routes.\"?\": while parsing a flow mapping, did not find expected ',' or '}' at line 1, column 25",
        ],
    ),
    (
        "routes: { /a: [GET], \"/a/{x}\": [GET], \"/a/{y}\": [POST] }\nstages: { prod: {} }\n",
        &["routes.\"/a/{y}\": conflicts with the route `/a/{x}` (the same paths would match both)"],
    ),
    (
        "routes: { /a: [GET, FETCH], b: [GET], /c//d: [GET] }\nstages: { prod: {} }\n",
        &[
            "routes.\"/a\"[1]: `FETCH` is not a method (use one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS, ANY)",
            "routes.\"/c//d\": a resource path must not contain an empty segment (`//`)",
            "routes.b: a resource path must start with `/`",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { \"bad stage\": {}, prod: { variables: { \"a-b\": \"x\", ok: \"y\\u0001\" } } }\n",
        &[
            "stages.\"bad stage\": a stage name is 1 to 128 letters, digits, `-` or `_`",
            "stages.prod.variables.a-b: a variable name is letters, digits and `_`",
            "stages.prod.variables.ok: a variable value is at most 512 characters, none of them control characters",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { throttle: { rate: -1, burst: 5 } } } }\n",
        &["stages.prod.settings.throttle.rate: must be >= 0 (got -1)"],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { throttle: { rate: .nan, burst: 5 } } } }\n",
        &["stages.prod.settings.throttle.rate: must be a number, not NaN"],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { throttle: { rate: 0, burst: 5 } }, methods: { /a/GET: { throttle: { rate: 5, burst: 0 } } } } }\n",
        &[
            "stages.prod.methods.\"/a/GET\".throttle.burst: must be > 0 when rate is > 0 (an empty bucket admits nothing)",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { throttle: { rate: 2000000000, burst: 5 } } } }\n",
        &["stages.prod.settings.throttle.rate: must be <= 1000000000 (one request per nanosecond)"],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { throttle: { rate: 5 } } } }\n",
        &["stages.prod.settings.throttle.burst: is required"],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { cache: { enabled: true, ttl: 4000, stale_if_error: 5000, statuses: [99, 600], key: [bogus.x, header.bad header, path.nope] } } } }\n",
        &[
            "stages.prod.settings.cache.ttl: must be <= 3600 seconds (got 4000)",
            "stages.prod.settings.cache.key[0]: `bogus.x` is not a cache key parameter (use querystring.NAME, header.NAME or path.NAME)",
            "stages.prod.settings.cache.key[1]: `bad header` is not a valid header name",
            "stages.prod.settings.cache.stale_if_error: must be <= 3600 seconds (got 5000)",
            "stages.prod.settings.cache.statuses[0]: must be an HTTP status, 100 to 599 (got 99)",
            "stages.prod.settings.cache.statuses[1]: must be an HTTP status, 100 to 599 (got 600)",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { methods: { /b/GET: {}, /a/POST: {}, bad: {}, /a/*: {} } } }\n",
        &[
            "stages.prod.methods.\"/a/POST\": the route `/a` has no method `POST`",
            "stages.prod.methods.\"/b/GET\": unknown route `/b`",
            "stages.prod.methods.bad: must be `RESOURCE/METHOD` (such as `/pets/GET`)",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: {}, methods: { \"*/*\": {} } } }\n",
        &[],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { authorization: sigv4 } } }\n",
        &["sigv4: is required because a method uses `authorization: sigv4`"],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { authorization: authorizer } } }\n",
        &["stages.prod.settings.authorizer: `authorization: authorizer` needs `authorizer: NAME`"],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { authorizer: nope } } }\n",
        &[],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nplans: { p: { stages: [nope], quota: { limit: 0, period: day, offset: 3 } } }\n",
        &[
            "plans.p.stages[0]: unknown stage `nope`",
            "plans.p.quota.limit: must be > 0",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nplans: { p: { stages: [prod], quota: { limit: 5, period: day, offset: 5 }, methods: { /a/POST: { throttle: { rate: 1, burst: 1 } }, /zz/GET: {} } } }\n",
        &[
            "plans.p.quota.offset: must be < limit (5)",
            "plans.p.methods.\"/a/POST\": the route `/a` has no method `POST`",
            "plans.p.methods.\"/zz/GET\": unknown route `/zz`",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nplans: { p: { stages: [prod] }, q: { stages: [prod] } }\nkeys: [ { name: k, value: key-value-0123456789abc, plans: [p, q, nope] } ]\n",
        &[
            "keys[0].plans[1]: plans `p` and `q` both cover stage `prod` (a key may be in one plan per stage)",
            "keys[0].plans[2]: unknown plan `nope`",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nkeys: [ { name: k, value: short }, { name: k, value: key-value-0123456789abc, value_sha256: abc }, { name: \"\", value_sha256: xyz }, { name: m } ]\n",
        &[
            "keys[0].value: an API key is 20 to 128 printable ASCII characters without spaces",
            "keys[1].name: `k` is also the name of keys[0]",
            "keys[1]: give `value` or `value_sha256`, not both",
            "keys[2].name: must not be empty",
            "keys[2].value_sha256: must be 64 hexadecimal digits",
            "keys[3]: `value` or `value_sha256` is required",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nkeys: [ { name: a, value: key-value-0123456789abc }, { name: b, value: key-value-0123456789abc, expires: tomorrow } ]\n",
        &[
            "keys[1]: has the same key value as keys[0]",
            "keys[1].expires: must be an RFC 3339 time such as 2027-01-31T00:00:00Z",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\ncredentials: [ { access_key_id: akid, secret_access_key: \"\" }, { access_key_id: AKID, secret_access_key: s, principal: \"\" }, { access_key_id: AKID, secret_access_key: t } ]\n",
        &[
            "credentials[0].access_key_id: an access key id is 1 to 128 upper-case letters and digits",
            "credentials[0].secret_access_key: must not be empty",
            "credentials[1].principal: must not be empty",
            "credentials[2].access_key_id: `AKID` is also the id of credentials[1]",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nsigv4: { region: \"\", service: \"\", max_skew: 0, max_body: 0 }\n",
        &[
            "sigv4.region: must not be empty",
            "sigv4.service: must not be empty",
            "sigv4.max_skew: must be between 1 and 3600 seconds",
            "sigv4.max_body: must be between 1 byte and 1GiB",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nresponses: { NOPE: {}, THROTTLED: { status: 99, headers: { \"bad header\": \"x\" } } }\n",
        &[
            "responses.NOPE: unknown gateway response kind (RESOURCE_NOT_FOUND, THROTTLED, DEFAULT_4XX, ...)",
            "responses.THROTTLED.status: status must be between 100 and 599",
            "responses.THROTTLED.headers.\"bad header\": `bad header` is not a valid header name",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nthrottle_options: { max_tracked_keys: 0, per_client: { rate: 1 }, trusted_proxies: [not-an-ip] }\n",
        &[
            "throttle_options.per_client.burst: is required",
            "throttle_options.max_tracked_keys: must be at least 1",
            "throttle_options.trusted_proxies[0]: `not-an-ip` is not an IP address or CIDR block",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\napi_key_options: { pepper: short, header: \"bad header\", query: \"\" }\n",
        &[
            "api_key_options.header: `bad header` is not a valid header name",
            "api_key_options.query: must not be empty",
            "api_key_options.pepper: must be at least 16 characters",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nauthorizers: { a: { identity_sources: [], ttl: 5000 }, b: { identity_sources: [cookie.x, header.bad header] } }\n",
        &[
            "authorizers.a.identity_sources: at least one identity source is required",
            "authorizers.a.ttl: must be <= 3600 seconds (got 5000)",
            "authorizers.b.identity_sources[0]: `cookie.x` is not an identity source (header.NAME, querystring.NAME, stageVariables.NAME)",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { integration: { type: http, url: \"ftp://x/{nope}\", timeout_ms: 10 } } } }\n",
        &[
            "stages.prod.settings.integration: `ftp://x/{nope}`: an integration URL starts with http:// or https://",
            "stages.prod.settings.integration.timeout_ms: must be 50 to 300000 (got 10)",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { integration: { type: http, url: \"https://x/a\", tls: { ca_file: /no/such/ca.pem } } }, methods: { /a/GET: { integration: { type: http, url: \"https://x/a\", tls: { client_cert: /no/cert.pem } } } } } }\n",
        &[
            "stages.prod.settings.integration.tls: ca_file `/no/such/ca.pem`: I/O error: No such file or directory (os error 2)",
            "stages.prod.methods.\"/a/GET\".integration.tls: give both client_cert and client_key, or neither",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { integration: { type: mock, status: 700 } } } }\n",
        &["stages.prod.settings.integration.status: must be an HTTP status, 100 to 599 (got 700)"],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { mapping: { request: { set: { bogus: x }, templates: { application/json: \"{{ a ~ }}\" } }, responses: [ { selection_pattern: \"(\" }, {}, {} ] } } } }\n",
        &[
            "stages.prod.settings.mapping.request.set.bogus: `bogus` is not a target (integration.request.header|querystring|path.NAME)",
            "stages.prod.settings.mapping.request.templates.\"application/json\": line 1: unexpected end of variable block",
            "stages.prod.settings.mapping.responses[0].selection_pattern: invalid regex: regex parse error:\n    ^(?:()$\n     ^\nerror: unclosed group",
            "stages.prod.settings.mapping.responses: at most one response without `selection_pattern` (the default)",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nmapping_limits: { max_body: 0, max_output: 0, fuel: 0 }\n",
        &[
            "mapping_limits.max_body: must be more than 0 and fit in memory",
            "mapping_limits.max_output: must be more than 0 and fit in memory",
            "mapping_limits.fuel: must be more than 0",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nlimits: { body_timeout_ms: 0 }\n",
        &["limits.body_timeout_ms: must be 1 to 600000"],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nunknown_top: 1\nkeys: [ { name: k, value: key-value-0123456789abc, colour: red } ]\n",
        &[
            "unknown_top: unknown field",
            "keys[0].colour: unknown field",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { throttle: { rate: 1, burst: -1 } } } }\n",
        &["stages.prod.settings.throttle.burst: invalid u32 at line 2, column 59"],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { cache_capacity: lots } }\n",
        &[
            "stages.prod.cache_capacity: not a size (use a number with B, KB, MB, GB, KiB, MiB or GiB) at line 2, column 35",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: {} }\nplans: { p: { quota: { limit: 5, period: fortnight } } }\n",
        &[
            "plans.p.quota.period: unknown variant, expected one of minute, hour, day, week, month, year, eternity at line 3, column 42",
        ],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { cache: { unauthorized: MAYBE } } } }\n",
        &[
            "stages.prod.settings.cache.unauthorized: unknown variant, expected one of FAIL_WITH_403, SUCCEED_WITH_RESPONSE_HEADER, SUCCEED_WITHOUT_RESPONSE_HEADER at line 2, column 54",
        ],
    ),
    (
        "throttle: { rate: 1 }\nroutes: { /a: [GET] }\nstages: { prod: {} }\n",
        &["throttle.burst: is required"],
    ),
    (
        "routes: { /a: [GET] }\nstages: { prod: { settings: { mapping: { request: { templates: { application/json: \"{% macro m() %}{% endmacro %}\" } } } } } }\n",
        &[
            "stages.prod.settings.mapping.request.templates.\"application/json\": line 1: a macro, call block, include, import, extends or block is not supported in mapping templates (what it builds cannot be bounded)",
        ],
    ),
];

#[test]
fn every_config_error_message_and_path_is_pinned() {
    let mut pinned = 0;
    for (yaml, expected) in CASES {
        assert_eq!(&issues(yaml), expected, "{yaml}");
        pinned += expected.len();
    }
    assert!(pinned >= 30, "{pinned}");
}
