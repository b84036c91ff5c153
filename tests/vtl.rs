//! VTL templates as API Gateway evaluates them: one case per language rule
//! and per `$input`/`$util` behaviour, the developer guide's examples, and
//! the bounds.
//!
//! Where each expected value comes from is on its row:
//! - **AWS-rec**: LocalStack's API Gateway tests whose snapshots were recorded
//!   against AWS (`tests/aws/services/apigateway/test_apigateway_common.py`,
//!   `test_apigateway_integrations.py`, `test_apigateway_kinesis.py`);
//! - **AWS-doc**: the developer guide in `../shared/reference/agw-devguide/`
//!   (file named);
//! - **AWS-obs**: results published by people who deployed the template to
//!   API Gateway (ToQoz/api-gateway-mapping-template's results table;
//!   serverless/serverless#1014);
//! - **V17**: Apache Velocity 1.7's documented behaviour (user guide; its
//!   space-gobbling test case for whitespace);
//! - **Java**: the JDK's documented behaviour of the method called;
//! - **Jayway**: Jayway JsonPath's README.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tollgate::vtl::{Limits, Params, Template, Variables};

struct Req {
    body: String,
    path: BTreeMap<String, String>,
    query: BTreeMap<String, String>,
    header: BTreeMap<String, String>,
    context: serde_json::Value,
    stage: BTreeMap<String, String>,
}

impl Req {
    fn body(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            path: BTreeMap::new(),
            query: BTreeMap::new(),
            header: BTreeMap::new(),
            context: json!({
                "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                "stage": "prod",
                "resourcePath": "/pets/{petId}",
                "httpMethod": "GET",
                "identity": {"sourceIp": "192.0.2.1", "userAgent": "curl/8"},
                "authorizer": {"principalId": "user-1", "tier": "gold"}
            }),
            stage: BTreeMap::from([
                ("env".into(), "prod".into()),
                ("url".into(), "https://x.test".into()),
            ]),
        }
    }

    fn render_with(&self, template: &str, limits: &Limits) -> Result<String, String> {
        let t = Template::compile(template).map_err(|e| format!("compile: {e}"))?;
        let vars = Variables {
            body: self.body.as_bytes(),
            params: Params {
                path: &self.path,
                querystring: &self.query,
                header: &self.header,
            },
            context: &self.context,
            stage_variables: &self.stage,
        };
        t.render(&vars, limits).map_err(|e| format!("render: {e}"))
    }

    fn render(&self, template: &str) -> String {
        self.render_with(template, &Limits::default())
            .unwrap_or_else(|e| panic!("{template:?}: {e}"))
    }
}

fn r(template: &str) -> String {
    Req::body("").render(template)
}

fn rb(body: &str, template: &str) -> String {
    Req::body(body).render(template)
}

/// (template, body, expected, source)
const CASES: &[(&str, &str, &str, &str)] = &[
    // References.
    ("plain text", "", "plain text", "V17"),
    (
        "[$undefined]",
        "",
        "[]",
        "AWS-rec: an undefined reference renders empty",
    ),
    ("[$!undefined]", "", "[]", "V17 quiet reference"),
    (
        "[$undefined.a.b()]",
        "",
        "[]",
        "AWS-rec: a property of nothing renders empty",
    ),
    ("#set($x = 'a')${x}b", "", "ab", "V17 formal reference"),
    (
        "#set($x = 'a')$x.",
        "",
        "a.",
        "V17: a dot not before a name is text",
    ),
    (
        "cost $5 and #1",
        "",
        "cost $5 and #1",
        "V17: `$`, `#` starting nothing are text",
    ),
    (
        "#set($x = 1)\\$x",
        "",
        "$x",
        "V17 escaped defined reference",
    ),
    (
        "\\$y",
        "",
        "\\$y",
        "V17 escaped undefined reference keeps its backslash",
    ),
    (
        "#set($x = 1)\\\\$x",
        "",
        "\\1",
        "V17 two backslashes: one, then the value",
    ),
    ("\\#if(true)x", "", "#if(true)x", "V17 escaped directive"),
    (
        "a## comment\nb",
        "",
        "ab",
        "V17 line comment takes its newline",
    ),
    ("a#* block\ncomment *#b", "", "ab", "V17 block comment"),
    ("#[[$x #if(]]#", "", "$x #if(", "V17 unparsed content"),
    // Arithmetic, Java's rules.
    (
        "#set($a = 7 / 2)$a",
        "",
        "3",
        "V17: integer division truncates",
    ),
    (
        "#set($a = -7 / 2)$a",
        "",
        "-3",
        "Java: truncates toward zero",
    ),
    ("#set($a = 7 % 3)$a", "", "1", "V17"),
    (
        "#set($a = 7.0 / 2)$a",
        "",
        "3.5",
        "V17: a double makes a double",
    ),
    ("#set($a = 1 + 2.0)$a", "", "3.0", "Java Double.toString"),
    (
        "#set($a = 1)#set($a = 5 / 0)$a",
        "",
        "1",
        "V17: division by zero is null, and #set of null keeps the old value",
    ),
    (
        "[#set($a = 5 / 0)$a]",
        "",
        "[]",
        "V17: division by zero is null",
    ),
    (
        "#set($a = \"5\" + 1)$a",
        "",
        "51",
        "V17: + with a string concatenates",
    ),
    ("#set($a = -3 + 1)$a", "", "-2", "V17"),
    (
        "#set($d = 10000000.0)$d",
        "",
        "1.0E7",
        "Java Double.toString",
    ),
    ("#set($d = 0.0001)$d", "", "1.0E-4", "Java Double.toString"),
    (
        "#set($a = 9223372036854775807 + 1)$a",
        "",
        "9.223372036854776E18",
        "tollgate: past 64 bits a double",
    ),
    // Comparison and logic.
    (
        "#if(2 gt 1 and not false)y#end",
        "",
        "y",
        "V17 word operators",
    ),
    (
        "#if(1 == 1.0)y#end",
        "",
        "y",
        "V17: numbers compare by value",
    ),
    ("#if('a' < 'b' && 3 >= 3 || false)y#end", "", "y", "V17"),
    (
        "#if($missing == \"\")y#{else}n#end",
        "",
        "y",
        "AWS-rec: null equals the empty string",
    ),
    ("#if($missing == $null)y#{else}n#end", "", "y", "AWS-rec"),
    (
        "#if($foo.bar.stuff != '')y#{else}n#end",
        "",
        "n",
        "AWS-rec (Kinesis PutRecords)",
    ),
    ("#if($missing)y#{else}n#end", "", "n", "V17: null is false"),
    (
        "#if('')y#{else}n#end",
        "",
        "y",
        "V17: an empty string is true",
    ),
    (
        "#set($n = 2)#if($n == 1)one#elseif($n == 2)two#{else}many#end",
        "",
        "two",
        "V17",
    ),
    // #foreach.
    (
        "#foreach($i in [1, 2, 3])$i#if($foreach.hasNext),#end#end",
        "",
        "1,2,3",
        "AWS-doc models-mappings: hasNext comma joining",
    ),
    (
        "#set($m = {\"a\": 1, \"b\": 2})#foreach($v in $m)$v#end",
        "",
        "12",
        "V17: a map iterates its values",
    ),
    (
        "#set($m = {\"a\": 1, \"b\": 2})#foreach($k in $m.keySet())$k=$m.get($k);#end",
        "",
        "a=1;b=2;",
        "AWS-doc mapping-template-reference: keySet and get",
    ),
    (
        "#set($m = {\"a\": 1})#foreach($e in $m.entrySet())$e.key:$e.value#end",
        "",
        "a:1",
        "Java Map.Entry",
    ),
    (
        "#foreach($i in ['a', 'b'])$foreach.index$foreach.count$velocityCount#end",
        "",
        "011122",
        "V17 loop variables",
    ),
    (
        "#foreach($i in [1..5])#if($i == 3)#break#end$i#end",
        "",
        "12",
        "V17 #break",
    ),
    ("a#stop b", "", "a", "V17 #stop"),
    (
        "#foreach($i in [3..1])$i#end",
        "",
        "321",
        "V17: a range runs down too",
    ),
    (
        "#foreach($i in [1..1500])#set($n = $i)#end$n",
        "",
        "1000",
        "AWS-doc limits.md: at most 1,000 iterations",
    ),
    (
        "#foreach($a in [1, 2])#foreach($b in [1])$foreach.parent.index#end#end",
        "",
        "01",
        "V17 $foreach.parent",
    ),
    (
        "#set($i = 'x')#foreach($i in [1])#end$i",
        "",
        "x",
        "V17: the loop variable is restored",
    ),
    (
        "#foreach($i in $missing)x#end",
        "",
        "",
        "V17: nothing to iterate",
    ),
    // #set.
    (
        "#set($a = 1)#set($a = $missing)$a",
        "",
        "1",
        "V17: #set of null leaves the reference",
    ),
    (
        "#set($l = [])$l.add(1)$l",
        "",
        "true[1]",
        "Java List.add returns true",
    ),
    (
        "#set($m = {})$m.put('a', 1)$m",
        "",
        "{a=1}",
        "Java Map.put returns the previous value (null)",
    ),
    (
        "#set($m = {'a': 1, 'b': 'x'})$m",
        "",
        "{a=1, b=x}",
        "Java AbstractMap.toString",
    ),
    (
        "#set($l = [1, 'a', [2]])$l",
        "",
        "[1, a, [2]]",
        "Java AbstractCollection.toString",
    ),
    (
        "#set($l = [1, 2])$l[1]#set($l[0] = 9)$l",
        "",
        "2[9, 2]",
        "AWS-rec: index notation",
    ),
    (
        "#set($m = {})#set($k = 'x')#set($m[$k] = 1)#set($m.y = 2)$m",
        "",
        "{x=1, y=2}",
        "AWS-rec: map assignment",
    ),
    (
        "#set($a = [])$a.add($a)$a",
        "",
        "true[(this Collection)]",
        "Java AbstractCollection.toString",
    ),
    // #define, #macro, strings.
    (
        "#define($b)v=$v#end#set($v = 2)$b",
        "",
        "v=2",
        "V17: a block renders where used",
    ),
    (
        "#macro(greet $n)Hi $n!#end#greet(\"Bob\")",
        "",
        "Hi Bob!",
        "V17 #macro",
    ),
    (
        "#notamacro($x)",
        "",
        "#notamacro($x)",
        "V17: an unknown macro call is text",
    ),
    (
        "#set($n = 'W')#set($s = \"Hi $n\")$s",
        "",
        "Hi W",
        "V17: double quotes interpolate",
    ),
    (
        "#set($n = 'W')#set($s = 'Hi $n')$s",
        "",
        "Hi $n",
        "V17: single quotes do not",
    ),
    // Whitespace (Velocity 1.x).
    (
        "a\n#set($x = 1)\nb",
        "",
        "a\nb",
        "V17: #set alone on its line",
    ),
    (
        "a\n    #set($x = 1)\nb",
        "",
        "a\nb",
        "V17: #set takes its indentation",
    ),
    (
        "<t>\n  #foreach($a in [1..1])\n    <tr>\n  #end\n</t>\n",
        "",
        "<t>\n      <tr>\n  </t>\n",
        "V17 space gobbling (Velocity's SpaceGobblingTestCase, bc)",
    ),
    (
        "#if(true)\nyes\n#end\n",
        "",
        "yes\n",
        "V17: the newline after a directive's `)` and #end",
    ),
    // Java String methods.
    (
        "#set($s = 'Hello')$s.length() $s.substring(1, 3) $s.indexOf('l') $s.toUpperCase() $s.charAt(0)",
        "",
        "5 el 2 HELLO H",
        "Java String",
    ),
    (
        "#set($s = '  x ')[$s.trim()]",
        "",
        "[x]",
        "Java String.trim",
    ),
    (
        "#set($s = 'a-b-c')$s.replace('-', '+') $s.replaceAll('(\\w)-', '$1') $s.replaceFirst('-', '')",
        "",
        "a+b+c abc ab-c",
        "Java replace/replaceAll/replaceFirst",
    ),
    (
        "#set($s = 'a,b,,')#set($p = $s.split(','))$p $p.size()",
        "",
        "[a, b] 2",
        "Java String.split drops trailing empty strings",
    ),
    (
        "#set($s = 'abc')#if($s.matches('a.c') && $s.startsWith('ab') && $s.contains('b') && $s.equalsIgnoreCase('ABC'))y#end",
        "",
        "y",
        "Java String",
    ),
    (
        "#set($s = 'abc')[$s.size()]",
        "",
        "[]",
        "AWS-obs: size() is not a String method: null",
    ),
    (
        "'abc'.size()",
        "",
        "'abc'.size()",
        "V17: a literal in text is text",
    ),
    // $util.
    (
        "$util.escapeJavaScript($input.path('$.s'))",
        "{\"s\": \"it's \\\"q\\\"\\n/é\"}",
        "it\\'s \\\"q\\\"\\n\\/\\u00E9",
        "AWS-doc mapping-template-reference; Commons Lang escapeJavaScript",
    ),
    (
        "$util.escapeJavaScript(\"it's\").replaceAll(\"\\\\'\",\"'\")",
        "",
        "it's",
        "AWS-doc mapping-template-reference: the documented fix",
    ),
    (
        "$util.urlEncode($input.body)",
        "{\"some\": \"value\"}",
        "%7B%22some%22%3A+%22value%22%7D",
        "AWS-rec",
    ),
    (
        "$util.urlEncode($input.body)",
        "",
        "%7B%7D",
        "AWS-rec: an empty body is {}",
    ),
    (
        "EncodedBodyAccess=$util.urlEncode($input.body.testAccess)",
        "{\"some\": \"value\"}",
        "EncodedBodyAccess=",
        "AWS-rec",
    ),
    ("$util.urlDecode('a+b%26c')", "", "a b&c", "Java URLDecoder"),
    (
        "$util.base64Encode('{\"foo\": \"bar1\"}') $util.base64Decode('aGk=')",
        "",
        "eyJmb28iOiAiYmFyMSJ9 hi",
        "AWS-rec (Kinesis): padded base64",
    ),
    (
        "#set($o = $util.parseJson($input.path('$.errorMessage')))$o.key2.arr[0]",
        "{\"errorMessage\":\"{\\\"key1\\\":\\\"var1\\\",\\\"key2\\\":{\\\"arr\\\":[1,2,3]}}\"}",
        "1",
        "AWS-doc mapping-template-reference parseJson",
    ),
    // $input.
    ("$input.body", "", "{}", "AWS-rec: an empty body"),
    ("$input.body", "some raw data", "some raw data", "AWS-rec"),
    ("$input.json('$')", "", "{}", "AWS-obs"),
    ("\"$input.path('$')\"", "", "\"{}\"", "AWS-obs"),
    (
        "$input.json('$')",
        "a=b",
        "\"a=b\"",
        "AWS-obs: a body that is not JSON is a string",
    ),
    ("\"$input.path('$')\"", "a=b", "\"a=b\"", "AWS-obs"),
    (
        "$input.json('$.message')",
        "not json",
        "\"\"",
        "AWS-rec (console): a path that selects nothing",
    ),
    (
        "[$input.path('$.x')]",
        "not json",
        "[]",
        "AWS-rec (console)",
    ),
    (
        "#set($result = $input.path(\"$.json\"))$result",
        "{\"json\":{\"foo\":\"bar\"}}",
        "{foo=bar}",
        "AWS-rec: a map prints as Java's",
    ),
    (
        "#set($result = $input.path(\"$.json\"))$result",
        "{\"json\":[{\"foo\":\"bar\"}]}",
        "[{\"foo\":\"bar\"}]",
        "AWS-rec: a list prints as JSON",
    ),
    (
        "#set($result = $input.path(\"$.json\"))$result",
        "{\"json\":{\"foo\":[{\"nested\":\"bar\"}]}}",
        "{foo=[{\"nested\":\"bar\"}]}",
        "AWS-rec",
    ),
    (
        "#set($result = $input.path(\"$.json\"))$result",
        "{\"json\":{\"bigger\":\"dict\",\"to\":\"test\",\"with\":\"separators\"}}",
        "{bigger=dict, to=test, with=separators}",
        "AWS-rec",
    ),
    (
        "#set($result = $input.path(\"$.json\"))$result.nested",
        "{\"json\":{\"nested\":[{\"foo\":\"bar\"}]}}",
        "[{\"foo\":\"bar\"}]",
        "AWS-rec",
    ),
    (
        "#set($result = $input.path(\"$.json\"))$result[0]",
        "{\"json\":[[{\"foo\":\"bar\"}]]}",
        "[{\"foo\":\"bar\"}]",
        "AWS-rec",
    ),
    (
        "#set($result = $input.path(\"$.json\"))$result.toString()",
        "{\"json\":{\"list\":[{\"foo\":\"bar\"}]}}",
        "{list=[{\"foo\":\"bar\"}]}",
        "AWS-rec",
    ),
    (
        "#set($result = $input.path(\"$.nonExisting\")){\"body\": $result, \"nested\": $result.nested, \"isNull\": #if( $result == $null )\"true\"#else\"false\"#end, \"isEmptyString\": #if( $result == \"\" )\"true\"#else\"false\"#end}",
        "{\"json\":{}}",
        "{\"body\": , \"nested\": , \"isNull\": \"true\", \"isEmptyString\": \"true\"}",
        "AWS-rec (invalid-path)",
    ),
    (
        "#set($result = $input.path(\"$.json.listValue\")){\"body\": $result, \"isNull\": #if( $result == $null )\"true\"#else\"false\"#end, \"isEmptyString\": #if( $result == \"\" )\"true\"#else\"false\"#end}",
        "{\"json\":{\"listValue\":[]}}",
        "{\"body\": [], \"isNull\": \"false\", \"isEmptyString\": \"false\"}",
        "AWS-rec",
    ),
    (
        "\"$input.path('$.things').size()\"",
        "{\"things\":{\"1\":{},\"2\":{},\"3\":{}}}",
        "\"3\"",
        "AWS-doc mapping-template-reference",
    ),
    (
        "$input.path('$.n') $input.path('$.p') $input.path('$.f')",
        "{\"n\": 5, \"p\": 249.99, \"f\": 5.0}",
        "5 249.99 5.0",
        "AWS-doc models-mappings: integers stay integers",
    ),
    (
        "$input.json('$.items[*].id')",
        "{\"items\": [{\"id\": 1}]}",
        "[1]",
        "Jayway: an indefinite path is a list, even of one",
    ),
    (
        "$input.json('$.items[0]')",
        "{\"items\": [{\"id\": 1, \"u\": \"a/b\"}]}",
        "{\"id\":1,\"u\":\"a\\/b\"}",
        "json-smart's compact JSON",
    ),
    (
        "$input.json('$.pets[?(@.price > 100)].name')",
        "{\"pets\": [{\"name\": \"a\", \"price\": 249.99}, {\"name\": \"b\", \"price\": 99}]}",
        "[\"a\"]",
        "Jayway filter",
    ),
    (
        "$input.json('$.items') #foreach($k in $input.path('$').keySet())$k #end",
        "{\"zeta\": 1, \"alpha\": {}, \"items\": [{\"sku\": \"A1\", \"qty\": 2}]}",
        "[{\"sku\":\"A1\",\"qty\":2}] zeta alpha items ",
        "AWS-rec: maps print in document order",
    ),
    (
        "$input.json('$..name')",
        "{\"a\": {\"name\": 1}, \"b\": [{\"name\": 2}]}",
        "[1,2]",
        "Jayway deep scan",
    ),
    (
        "#set($root = $input.path('$'))#foreach($e in $root)Item $e.id is a $e.type. #end",
        "[{\"id\": 1, \"type\": \"dog\"}, {\"id\": 2, \"type\": \"cat\"}]",
        "Item 1 is a dog. Item 2 is a cat. ",
        "AWS-doc models-mappings",
    ),
    // $input.params, $context, $stageVariables.
    (
        "{\"petId\": \"$input.params('petId')\"}",
        "",
        "{\"petId\": \"\"}",
        "AWS-rec (test invoke)",
    ),
    (
        "$context.requestId $context.stage $context.resourcePath $context.httpMethod $context.identity.sourceIp",
        "",
        "c6af9ac6-7b61-11e6-9a41-93e8deadbeef prod /pets/{petId} GET 192.0.2.1",
        "AWS-doc mapping-template-reference",
    ),
    (
        "$context.authorizer.principalId $context.authorizer.tier",
        "",
        "user-1 gold",
        "AWS-doc: authorizer context values",
    ),
    (
        "$stageVariables.env $stageVariables['env'] ${stageVariables['url']}",
        "",
        "prod prod https://x.test",
        "AWS-doc mapping-template-reference: three spellings",
    ),
];

#[test]
fn the_table() {
    let mut failures = Vec::new();
    for (template, body, expected, source) in CASES {
        let got = Req::body(*body).render_with(template, &Limits::default());
        if got.as_deref() != Ok(*expected) {
            failures.push(format!("{template:?} over {body:?} ({source}):\n  expected {expected:?}\n  got      {got:?}"));
        }
    }
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn params_are_searched_path_then_query_then_header() {
    // AWS-doc mapping-template-reference: "path, query string, or header
    // value (searched in that order)".
    let mut req = Req::body("");
    req.path.insert("id".into(), "from-path".into());
    req.query.insert("id".into(), "from-query".into());
    req.query.insert("q".into(), "from-query".into());
    req.header.insert("q".into(), "from-header".into());
    req.header.insert("X-Trace".into(), "t1".into());
    assert_eq!(
        req.render("$input.params('id') $input.params('q') $input.params('x-trace')"),
        "from-path from-query t1"
    );
    // serverless/serverless#1014: `$input.params().path` prints as a Java map.
    assert_eq!(req.render("\"$input.params().path\""), "\"{id=from-path}\"");
    assert_eq!(
        req.render("#foreach($type in $input.params().keySet())$type #end"),
        "path querystring header "
    );
}

#[test]
fn runtime_errors_fail_the_render() {
    // Java throws StringIndexOutOfBoundsException; API Gateway answers 500.
    let e = Req::body("").render_with("#set($s = 'abc')$s.substring(5)", &Limits::default());
    assert!(e.unwrap_err().contains("substring"));
    let e = Req::body("{}").render_with("#set($p = '$.a[')$input.path($p)", &Limits::default());
    assert!(
        e.unwrap_err().contains("JSONPath"),
        "invalid JSONPath at run time"
    );
    // A body that starts like JSON and is not: API Gateway refuses it (400
    // before any template, behind a gateway); a template alone fails.
    let e = Req::body("{a").render_with("$input.json('$')", &Limits::default());
    assert!(e.unwrap_err().contains("not JSON"));
}

#[test]
fn syntax_errors_name_line_and_column() {
    let cases = [
        ("#if($x)\nopen", 1, 1, "without `#end`"),
        ("ok\n  #set($x = )", 2, 13, "unexpected `)`"),
        ("a\n#end", 2, 1, "`#end` without a block"),
        ("x ${y", 1, 3, "`${` without its `}`"),
        ("#foreach($x $list)#end", 1, 13, "`in`"),
        ("$input.json('$.a[')", 1, 1, "invalid JSONPath"),
        ("#set($s = \"a\n $x.y(\")", 2, 7, "ends inside"),
    ];
    for (src, line, column, what) in cases {
        let e = Template::compile(src).unwrap_err();
        assert_eq!(
            (e.position.line, e.position.column),
            (line, column),
            "{src:?}: {e}"
        );
        assert!(e.message.contains(what), "{src:?}: {e}");
    }
}

#[test]
fn templates_over_300_kb_are_refused() {
    // api-gateway-known-issues.md: a mapping template is at most 300 KB.
    let big = "x".repeat(300 * 1024 + 1);
    assert!(
        Template::compile(&big)
            .unwrap_err()
            .message
            .contains("300 KB")
    );
    assert!(Template::compile(&"x".repeat(300 * 1024)).is_ok());
}

#[test]
fn nesting_past_the_bound_is_a_syntax_error_not_a_stack_overflow() {
    let deep = "#if(true)".repeat(10_000);
    assert!(
        Template::compile(&deep)
            .unwrap_err()
            .message
            .contains("nested deeper")
    );
    let parens = format!("#set($a = {}1{})", "(".repeat(10_000), ")".repeat(10_000));
    assert!(
        Template::compile(&parens)
            .unwrap_err()
            .message
            .contains("nested deeper")
    );
    let strings = format!(
        "#set($a = {}x{})",
        "\"$a(".repeat(5_000),
        ")\"".repeat(5_000)
    );
    assert!(Template::compile(&strings).is_err());
}

#[test]
fn every_bound_ends_a_runaway_render() {
    let small = Limits::new(10_000, 4096, 8, Duration::from_secs(5));
    let req = Req::body("{\"a\": [1, 2, 3]}");
    // Steps: a million iterations.
    let e = req
        .render_with(
            "#set($r = [1..1000])#foreach($i in $r)#foreach($j in $r)#end#end",
            &small,
        )
        .unwrap_err();
    assert!(e.contains("steps"), "{e}");
    // Output.
    let e = req
        .render_with("#foreach($i in [1..1000])0123456789#end", &small)
        .unwrap_err();
    assert!(e.contains("output"), "{e}");
    // A string doubling itself.
    let e = req
        .render_with(
            "#set($s = 'ab')#foreach($i in [1..40])#set($s = \"$s$s\")#end",
            &small,
        )
        .unwrap_err();
    assert!(e.contains("max_output"), "{e}");
    // A list doubling itself.
    let e = req
        .render_with(
            "#set($l = [1])#foreach($i in [1..40])#set($x = $l.addAll($l))#end",
            &small,
        )
        .unwrap_err();
    assert!(e.contains("max_output"), "{e}");
    // A range too large to build.
    let e = req
        .render_with("#set($r = [1..100000000])", &small)
        .unwrap_err();
    assert!(e.contains("range"), "{e}");
    // Recursion.
    let e = req
        .render_with("#macro(r)#r()#end#r()", &small)
        .unwrap_err();
    assert!(e.contains("max_depth"), "{e}");
    let e = req.render_with("#define($b)$b#end$b", &small).unwrap_err();
    assert!(e.contains("max_depth"), "{e}");
    // Time: a generous step budget, a tiny deadline.
    let slow = Limits::new(u64::MAX, 1 << 20, 8, Duration::from_millis(20));
    let e = req
        .render_with("#set($r = [1..1000])#foreach($i in $r)#foreach($j in $r)#foreach($k in $r)#end#end#end", &slow)
        .unwrap_err();
    assert!(e.contains("max_render_ms"), "{e}");
    // Printing a structure that holds itself twice stops at the output bound.
    let e = req
        .render_with(
            "#set($a = [])#set($b = [$a, $a])#set($x = $a.add($b))$b",
            &small,
        )
        .unwrap_err();
    assert!(e.contains("max_output"), "{e}");
}

#[test]
fn the_documented_mapping_examples() {
    // example-photos.md: original data, input template, and the transformed
    // data (as documented; compared as JSON, the docs reformat it).
    let photos = r#"{
  "photos": {
    "page": 1,
    "pages": "1234",
    "perpage": 100,
    "total": "123398",
    "photo": [
      {"id": "12345678901", "owner": "23456789@A12", "secret": "abc123d456", "server": "1234", "farm": 1,
       "title": "Sample photo 1", "ispublic": 1, "isfriend": 0, "isfamily": 0},
      {"id": "23456789012", "owner": "34567890@B23", "secret": "bcd234e567", "server": "2345", "farm": 2,
       "title": "Sample photo 2", "ispublic": 1, "isfriend": 0, "isfamily": 0}
    ]
  }
}"#;
    let input_template = r#"#set($inputRoot = $input.path('$'))
{
  "photos": {
    "page": $inputRoot.photos.page,
    "pages": "$inputRoot.photos.pages",
    "perpage": $inputRoot.photos.perpage,
    "total": "$inputRoot.photos.total",
    "photo": [
#foreach($elem in $inputRoot.photos.photo)
      {
        "id": "$elem.id",
        "owner": "$elem.owner",
        "secret": "$elem.secret",
        "server": "$elem.server",
        "farm": $elem.farm,
        "title": "$elem.title",
        "ispublic": $elem.ispublic,
        "isfriend": $elem.isfriend,
        "isfamily": $elem.isfamily
      }#if($foreach.hasNext),#end
			
#end
    ]
  }
}"#;
    let out = rb(photos, input_template);
    let got: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let want: serde_json::Value = serde_json::from_str(photos).unwrap();
    assert_eq!(
        got, want,
        "the input template maps the original data to itself"
    );

    let output_template = r#"#set($inputRoot = $input.path('$'))
{
  "photos": [
#foreach($elem in $inputRoot.photos.photo)
    {
      "id": "$elem.id",
      "owner": "$elem.owner",
      "title": "$elem.title",
      "ispublic": $elem.ispublic,
      "isfriend": $elem.isfriend,
      "isfamily": $elem.isfamily
    }#if($foreach.hasNext),#end
		
#end
  ]
}"#;
    let out = rb(photos, output_template);
    let got: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        got,
        json!({"photos": [
            {"id": "12345678901", "owner": "23456789@A12", "title": "Sample photo 1", "ispublic": 1, "isfriend": 0, "isfamily": 0},
            {"id": "23456789012", "owner": "34567890@B23", "title": "Sample photo 2", "ispublic": 1, "isfriend": 0, "isfamily": 0}
        ]}),
        "example-photos.md, transformed data"
    );
}

const NEWS: &str = r#"{
  "count": 1,
  "items": [
    {
      "last_updated_date": "2015-04-24",
      "expire_date": "2016-04-24",
      "author_first_name": "John",
      "description": "Sample Description",
      "creation_date": "2015-04-20",
      "title": "Sample Title",
      "allow_comment": "1",
      "author": {
        "last_name": "Doe",
        "email": "johndoe@example.com",
        "first_name": "John"
      },
      "body": "Sample Body",
      "publish_date": "2015-04-25",
      "version": "1",
      "author_last_name": "Doe",
      "parent_id": 2345678901,
      "article_url": "http://www.example.com/articles/3456789012"
    }
  ],
  "version": 1
}"#;

fn as_json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn the_news_article_example() {
    // example-news-article.md: the original data, the input mapping
    // template (which maps the data to itself) and the output mapping
    // template with its documented transformed data.
    let input_template = r#"#set($inputRoot = $input.path('$'))
{
  "count": $inputRoot.count,
  "items": [
#foreach($elem in $inputRoot.items)
    {
      "last_updated_date": "$elem.last_updated_date",
      "expire_date": "$elem.expire_date",
      "author_first_name": "$elem.author_first_name",
      "description": "$elem.description",
      "creation_date": "$elem.creation_date",
      "title": "$elem.title",
      "allow_comment": "$elem.allow_comment",
      "author": {
        "last_name": "$elem.author.last_name",
        "email": "$elem.author.email",
        "first_name": "$elem.author.first_name"
      },
      "body": "$elem.body",
      "publish_date": "$elem.publish_date",
      "version": "$elem.version",
      "author_last_name": "$elem.author_last_name",
      "parent_id": $elem.parent_id,
      "article_url": "$elem.article_url"
    }#if($foreach.hasNext),#end

#end
  ],
  "version": $inputRoot.version
}"#;
    assert_eq!(as_json(&rb(NEWS, input_template)), as_json(NEWS));
    let output_template = r#"#set($inputRoot = $input.path('$'))
{
  "count": $inputRoot.count,
  "items": [
#foreach($elem in $inputRoot.items)
    {
      "creation_date": "$elem.creation_date",
      "title": "$elem.title",
      "author": "$elem.author.first_name $elem.author.last_name",
      "body": "$elem.body",
      "publish_date": "$elem.publish_date",
      "article_url": "$elem.article_url"
    }#if($foreach.hasNext),#end

#end
  ],
  "version": $inputRoot.version
}"#;
    assert_eq!(
        as_json(&rb(NEWS, output_template)),
        json!({"count": 1, "items": [{
            "creation_date": "2015-04-20",
            "title": "Sample Title",
            "author": "John Doe",
            "body": "Sample Body",
            "publish_date": "2015-04-25",
            "article_url": "http://www.example.com/articles/3456789012"
        }], "version": 1}),
        "example-news-article.md, transformed data"
    );
}

#[test]
fn the_models_and_getting_started_examples() {
    // models-mappings.md: the produce department's data and the template
    // that turns its bins into choices (the documented result).
    let produce = r#"{"department": "produce", "categories": ["fruit", "vegetables"], "bins": [
        {"category": "fruit", "type": "apples", "price": 1.99, "unit": "pound", "quantity": 232},
        {"category": "fruit", "type": "bananas", "price": 0.19, "unit": "each", "quantity": 112},
        {"category": "vegetables", "type": "carrots", "price": 1.29, "unit": "bag", "quantity": 57}]}"#;
    let template = "#set($inputRoot = $input.path('$'))\n{\n  \"choices\": [\n#foreach($elem in $inputRoot.bins)\n    {\n      \"kind\": \"$elem.type\",\n      \"suggestedPrice\": \"$elem.price per $elem.unit\",\n      \"available\": $elem.quantity\n    }#if($foreach.hasNext),#end\n            \n#end\n  ]\n}";
    assert_eq!(
        as_json(&rb(produce, template)),
        json!({"choices": [
            {"kind": "apples", "suggestedPrice": "1.99 per pound", "available": 232},
            {"kind": "bananas", "suggestedPrice": "0.19 per each", "available": 112},
            {"kind": "carrots", "suggestedPrice": "1.29 per bag", "available": 57}
        ]})
    );
    // api-gateway-create-api-step-by-step.md: the pet store's three
    // integration response templates and the console's test results.
    let pets = r#"[{"id": 1, "type": "dog", "price": 249.99}, {"id": 2, "type": "cat", "price": 124.99}, {"id": 3, "type": "fish", "price": 0.99}]"#;
    let listings = "#set($inputRoot = $input.path('$'))\n{\n  \"listings\" : [\n#foreach($elem in $inputRoot)\n    \"Item number $elem.id is a $elem.type. The asking price is $elem.price.\"#if($foreach.hasNext),#end\n        \n#end\n  ]\n}";
    assert_eq!(
        as_json(&rb(pets, listings)),
        json!({"listings": [
            "Item number 1 is a dog. The asking price is 249.99.",
            "Item number 2 is a cat. The asking price is 124.99.",
            "Item number 3 is a fish. The asking price is 0.99."
        ]})
    );
    let flatten = "#set($inputRoot = $input.path('$'))\n[\n#foreach($elem in $inputRoot)\n  {\n    \"description\" : \"Item $elem.id is a $elem.type.\",\n    \"askingPrice\" : $elem.price\n  }#if($foreach.hasNext),#end\n\n#end\n]";
    let out = rb(pets, flatten);
    assert_eq!(
        as_json(&out),
        json!([
            {"description": "Item 1 is a dog.", "askingPrice": 249.99},
            {"description": "Item 2 is a cat.", "askingPrice": 124.99},
            {"description": "Item 3 is a fish.", "askingPrice": 0.99}
        ])
    );
    // Velocity 1.x's whitespace, as the console's output shows it: the
    // `#end` closing the `#if` takes its newline, so each `},` is followed
    // by the blank line's own newline only, and the `#set` line is gone.
    assert!(out.starts_with("[\n  {\n"), "{out:?}");
    assert!(out.contains("  },\n  {\n"), "{out:?}");
    assert!(out.ends_with("  }\n]"), "{out:?}");
    let classes = "#set($inputRoot = $input.path('$'))\n[\n#foreach($elem in $inputRoot)\n  {\n    \"number\": $elem.id,\n    \"class\": \"$elem.type\",\n    \"salesPrice\": $elem.price \n  }#if($foreach.hasNext),#end\n\n#end\n]";
    assert_eq!(
        as_json(&rb(pets, classes)),
        json!([
            {"number": 1, "class": "dog", "salesPrice": 249.99},
            {"number": 2, "class": "cat", "salesPrice": 124.99},
            {"number": 3, "class": "fish", "salesPrice": 0.99}
        ])
    );
}

#[test]
fn the_reference_examples() {
    // api-gateway-mapping-template-reference.md, "Example request and
    // response using $input" (the response as documented, compared as JSON).
    let mut req = Req::body(r#"{"things": {"1": {}, "2": {}, "3": {}}}"#);
    req.path.insert("id".into(), "abc".into());
    let out = req.render(
        r#"{
    "id" : "$input.params('id')",
    "count" : "$input.path('$.things').size()",
    "things" : $util.escapeJavaScript($input.json('$.things'))
}"#,
    );
    // escapeJavaScript escapes the JSON's quotes: the documented response
    // shows the unescaped object, which is what a JSON parser reads back
    // once the escapes are undone.
    assert_eq!(
        out,
        "{\n    \"id\" : \"abc\",\n    \"count\" : \"3\",\n    \"things\" : {\\\"1\\\":{},\\\"2\\\":{},\\\"3\\\":{}}\n}"
    );
    // The $context example: every variable the template names.
    let out = r(
        r#"{"stage" : "$context.stage", "request_id" : "$context.requestId", "source_ip" : "$context.identity.sourceIp", "user-agent" : "$context.identity.userAgent", "api_key" : "$context.identity.apiKey"}"#,
    );
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        got,
        json!({"stage": "prod", "request_id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "source_ip": "192.0.2.1", "user-agent": "curl/8", "api_key": ""})
    );
    // The parameter-mapping example: every parameter, by type.
    let mut req = Req::body("");
    req.path.insert("petId".into(), "7".into());
    req.query.insert("q".into(), "it's".into());
    let out = req.render(
        r#"#set($allParams = $input.params())
{
  "params" : {
    #foreach($type in $allParams.keySet())
    #set($params = $allParams.get($type))
    "$type" : {
      #foreach($paramName in $params.keySet())
      "$paramName" : "$util.escapeJavaScript($params.get($paramName))"
      #if($foreach.hasNext),#end
      #end
    }
    #if($foreach.hasNext),#end
    #end
  }
}"#,
    );
    // escapeJavaScript's `\'` is not JSON (the documented caveat): undo it
    // as the reference says, then parse.
    let got: serde_json::Value =
        serde_json::from_str(&out.replace("\\'", "'")).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        got,
        json!({"params": {"path": {"petId": "7"}, "querystring": {"q": "it's"}, "header": {}}})
    );
}

mod property {
    use super::*;
    use proptest::prelude::*;

    /// Pieces of the supported subset; random sequences of them are
    /// templates (many do not parse, which is a clean error too).
    pub(super) const PIECES: &[&str] = &[
        "text ",
        "\n",
        "  ",
        "$x",
        "$!x",
        "${x}",
        "$x.y",
        "$x[0]",
        "$x['k']",
        "$x.size()",
        "$x.get(0)",
        "$x.add($x)",
        "$x.addAll($x)",
        "$x.put('k', $x)",
        "$x.keySet()",
        "$x.toString()",
        "$x.substring(1)",
        "$x.split(',')",
        "$x.replaceAll('a+', 'bb')",
        "#set($x = $input.path('$'))",
        "#set($x = $input.path('$..*'))",
        "#set($x = [1..50])",
        "#set($x = \"$x$x\")",
        "#set($x = $x + 1)",
        "#set($x = {'k': $x})",
        "#set($x = [$x, $x])",
        "#set($x = $util.parseJson($input.json('$')))",
        "#set($x = $util.escapeJavaScript($x))",
        "#set($x = $input.params())",
        "#set($x = $x / 0)",
        "#if($x)",
        "#if($x == '')",
        "#elseif($x > 1)",
        "#else",
        "#end",
        "#foreach($i in $x)",
        "#foreach($i in [1..1000])",
        "$foreach.hasNext",
        "$velocityCount",
        "#break",
        "#stop",
        "#define($x)",
        "#macro(m $a)",
        "#m($x)",
        "##c\n",
        "#*",
        "*#",
        "\\$x",
        "\\#if",
        "$input.json('$.a[*]')",
        "$input.json('$[?(@.a > 1)]')",
        "$input.body",
        "$context.requestId",
        "$stageVariables.env",
        "$util.urlEncode($x)",
        "$util.base64Decode($x)",
        "(",
        ")",
        "\"",
        "'",
        "[",
        "]",
        "{",
        "}",
    ];

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            (-1e9f64..1e9).prop_map(serde_json::Value::from),
            "[a-z,'\"/\\\\é ]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_templates_never_panic_and_stay_in_bounds(
            pieces in prop::collection::vec(prop::sample::select(PIECES), 0..40),
            body in json_value(),
        ) {
            let template: String = pieces.concat();
            let body = serde_json::to_string(&body).unwrap();
            let limits = Limits::new(20_000, 8192, 6, Duration::from_secs(2));
            let Ok(t) = Template::compile(&template) else { return Ok(()) };
            let empty = BTreeMap::new();
            let stage = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
            let context = json!({"requestId": "r"});
            let vars = Variables {
                body: body.as_bytes(),
                params: Params { path: &empty, querystring: &empty, header: &empty },
                context: &context,
                stage_variables: &stage,
            };
            if let Ok(out) = t.render(&vars, &limits) {
                prop_assert!(out.len() <= limits.max_output, "{} bytes", out.len());
            }
        }
    }
}

#[test]
fn the_random_templates_reach_the_evaluator() {
    // The property above is only as good as the share of its templates that
    // parse and render: count them on a fixed seed.
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(proptest::sample::select(property::PIECES), 0..40);
    let (mut compiled, mut rendered) = (0, 0);
    let limits = Limits::new(20_000, 8192, 6, Duration::from_secs(2));
    let req = Req::body(r#"{"a": [1, 2, {"b": "x"}], "c": "d"}"#);
    for _ in 0..2000 {
        let template: String = strategy.new_tree(&mut runner).unwrap().current().concat();
        if Template::compile(&template).is_ok() {
            compiled += 1;
            if req.render_with(&template, &limits).is_ok() {
                rendered += 1;
            }
        }
    }
    assert!(
        compiled >= 300 && rendered >= 200,
        "compiled {compiled}, rendered {rendered} of 2000"
    );
}

#[test]
fn hostile_templates_fail_cleanly() {
    // Found by a hostile review; each used to overflow the stack, hang or
    // allocate past the limits.
    let limits = Limits::new(1_000_000, 1 << 20, 32, Duration::from_millis(500));
    let req = Req::body("{}");
    // A long operator chain nests to the left: refused when compiled.
    let chain = format!("#set($a = 1{})$a", "+1".repeat(30_000));
    assert!(
        Template::compile(&chain)
            .unwrap_err()
            .message
            .contains("nested deeper")
    );
    assert_eq!(
        req.render(&format!("#set($a = 1{})$a", "+1".repeat(40))),
        "41"
    );
    // Recursion through blocks nested inside recursive macros and blocks.
    let ifs = "#if(true)".repeat(10);
    let ends = "#end".repeat(10);
    for t in [
        format!("#define($b){ifs}$b{ends}#end$b"),
        format!("#macro(m $n){ifs}#set($k = $n + 1)#m($k){ends}#end#m(0)"),
    ] {
        let e = req.render_with(&t, &limits).unwrap_err();
        assert!(e.contains("nested"), "{e}");
    }
    // `==` over two lists that double 40 times (shared, so small in memory).
    let doubled = "#set($a = [])#set($b = [])".to_owned()
        + &"#set($a = [$a, $a])#set($b = [$b, $b])".repeat(40)
        + "#if($a == $b)same#end";
    assert!(
        req.render_with(&doubled, &limits)
            .unwrap_err()
            .contains("too large to compare")
    );
    // A mixed comparison prints both sides: bounded too.
    let wide = "#set($a = [1..1000])".to_owned()
        + &"#set($n = [])#foreach($i in [1..1000])#set($x = $n.add($a))#end#set($a = $n)".repeat(2)
        + "#if($a == 'x')#end";
    assert!(req.render_with(&wide, &limits).is_err());
    // `$0` repeated in a replacement copies the whole match each time.
    let big = "#set($s = 'abcdefgh')".to_owned()
        + &"#set($s = \"$s$s\")".repeat(13)
        + "#set($r = '$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0')$s.replaceAll('.+', $r)";
    assert!(
        req.render_with(&big, &limits)
            .unwrap_err()
            .contains("replaceAll")
    );
    // Quadratic JSONPath filters are counted against the visit budget.
    let body = format!(
        "{{\"a\": [{}]}}",
        (0..3000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let e = Req::body(body)
        .render_with("$input.json('$[?($.a subsetof $.a)]')", &limits)
        .unwrap_err();
    assert!(e.contains("too many nodes"), "{e}");
    // A long `||` chain in a filter is refused.
    let path = format!("$input.json('$[?(@.a{})]')", "||@.a".repeat(100));
    assert!(Template::compile(&path).is_err());
    // Java's edges.
    assert_eq!(r("#set($s = 'abc')$s.split('')"), "[a, b, c]");
    assert_eq!(
        r("#set($s = 'abcabc')$s.lastIndexOf('b') $s.lastIndexOf('b', 3) $s.lastIndexOf('b', 0)"),
        "4 1 -1"
    );
    assert_eq!(
        r("#set($s = 'ab-cd')$s.replaceAll('(?<x>\\w+)-(\\w+)', '$2 ${x}')"),
        "cd ab"
    );
    assert_eq!(
        r("#set($a = -9223372036854775807 - 1)#set($b = $a % -1)$b"),
        "0"
    );
    assert_eq!(
        r("#set($a = 9223372036854775808)$a"),
        "9.223372036854776E18"
    );
}

#[test]
fn debug_output_shows_no_body_no_context_and_no_header_values() {
    let mut req = Req::body(r#"{"password": "hunter2"}"#);
    req.header
        .insert("x-api-key".into(), "secret-key-value".into());
    req.context = json!({"identity": {"apiKey": "secret-key-value"}});
    let vars = Variables {
        body: req.body.as_bytes(),
        params: Params {
            path: &req.path,
            querystring: &req.query,
            header: &req.header,
        },
        context: &req.context,
        stage_variables: &req.stage,
    };
    let shown = format!("{vars:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("secret-key-value"),
        "{shown}"
    );
    assert!(
        shown.contains("x-api-key"),
        "header names are shown: {shown}"
    );
}
