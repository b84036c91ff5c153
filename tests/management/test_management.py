"""The management API driven by AWS's own clients (issue 20).

boto3 and the aws CLI, with AWS's unmodified service model, manage a running
petstore (`--admin-listen`) through `--endpoint-url`: list APIs and stages,
import and put an OpenAPI document, deploy, roll back, run a canary and
promote it, create a key and a usage plan, hit the quota and grant more,
export, map a custom domain, flush a stage cache, and be refused when
unsigned or wrongly signed. Every answer is parsed by botocore with the
model as AWS ships it: a shape it cannot parse fails the test.

Run by .ci/run (which installs boto3 and awscli):

    python3 tests/management/test_management.py

PETSTORE_BIN names the petstore binary (default target/debug/examples/petstore).
Every server listens on 127.0.0.1 and is stopped by its PID at the end.
"""

import datetime
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import sys
import time
import unittest
import urllib.parse

import boto3
import botocore
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("PETSTORE_BIN", os.path.join(ROOT, "target", "debug", "examples", "petstore"))
# The demo credentials of examples/petstore.yaml's `management` section.
ACCESS_KEY = "AKIDADMINEXAMPLE"
SECRET = "admin/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mock_api(title, version, extra_path=None):
    """An OpenAPI 3 document whose GET /hello is a mock answering `version`."""

    def mock(body):
        return {
            "responses": {"200": {"description": "ok"}},
            "x-amazon-apigateway-integration": {
                "type": "mock",
                "requestTemplates": {"application/json": '{"statusCode": 200}'},
                "responses": {
                    "default": {
                        "statusCode": "200",
                        "responseTemplates": {"application/json": json.dumps(body)},
                    }
                },
            },
        }

    paths = {"/hello": {"get": mock({"version": version})}}
    if extra_path:
        paths[extra_path] = {"get": mock({"only": version})}
    return json.dumps(
        {"openapi": "3.0.1", "info": {"title": title, "version": "1"}, "paths": paths}
    )


class Management(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.port = free_port()
        cls.admin = free_port()
        cls.log = open(os.path.join(cls.tmp.name, "petstore.log"), "w+")
        cls.proc = subprocess.Popen(
            [BIN, "--listen", f"127.0.0.1:{cls.port}", "--admin-listen", f"127.0.0.1:{cls.admin}", "--quiet"],
            stdout=cls.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(cls.log.name) as f:
                if "management on" in f.read():
                    break
            if cls.proc.poll() is not None:
                break
            time.sleep(0.1)
        else:
            cls.proc.kill()
        with open(cls.log.name) as f:
            text = f.read()
        if "management on" not in text:
            raise RuntimeError(f"petstore did not start:\n{text}")
        cls.endpoint = f"http://127.0.0.1:{cls.admin}"
        cls.client = cls.make_client(ACCESS_KEY, SECRET)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
        cls.log.close()
        cls.tmp.cleanup()

    @classmethod
    def make_client(cls, key, secret, **config):
        return boto3.client(
            "apigateway",
            endpoint_url=cls.endpoint,
            region_name=REGION,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=BotoConfig(retries={"max_attempts": 1}, **config),
        )

    def data(self, path, host, headers=None):
        """A data-plane GET; `host` picks the API (execute-api) or a domain."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        res = conn.getresponse()
        body = res.read()
        conn.close()
        return res.status, body

    def hello(self, api, stage="live"):
        status, body = self.data(f"/{stage}/hello", f"{api}.execute-api.localhost")
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def code(self, call):
        with self.assertRaises(ClientError) as cm:
            call()
        return cm.exception.response["Error"]["Code"]

    # -- APIs and stages --------------------------------------------------

    def test_list_apis_and_stages(self):
        apis = self.client.get_rest_apis()["items"]
        petstore = [a for a in apis if a["name"] == "petstore"]
        self.assertEqual(len(petstore), 1)
        self.assertIsInstance(petstore[0]["createdDate"], datetime.datetime)
        stages = self.client.get_stages(restApiId="petstore")["item"]
        self.assertEqual(sorted(s["stageName"] for s in stages), ["dev", "prod"])
        prod = self.client.get_stage(restApiId="petstore", stageName="prod")
        self.assertEqual(prod["variables"]["tier"], "gold")
        self.assertTrue(prod["cacheClusterEnabled"])
        self.assertEqual(prod["methodSettings"]["*/*"]["throttlingBurstLimit"], 100000)
        resources = self.client.get_resources(restApiId="petstore", limit=500)["items"]
        paths = {r["path"]: r for r in resources}
        self.assertIn("GET", paths["/pets/{petId}"]["resourceMethods"])
        self.assertEqual(paths["/pets/{petId}"]["parentId"], paths["/pets"]["id"])
        self.assertEqual(self.code(lambda: self.client.get_rest_api(restApiId="nope")), "NotFoundException")

    def test_pagination_follows_position(self):
        first = self.client.get_resources(restApiId="petstore", limit=2)
        self.assertEqual(len(first["items"]), 2)
        self.assertIn("position", first)
        rest = self.client.get_resources(restApiId="petstore", limit=500, position=first["position"])
        every = self.client.get_resources(restApiId="petstore", limit=500)["items"]
        self.assertEqual([r["id"] for r in first["items"] + rest["items"]], [r["id"] for r in every])

    def test_update_rest_api_methods_and_gateway_responses(self):
        c = self.client
        api = c.import_rest_api(body=mock_api("responses-api", 3))["id"]
        updated = c.update_rest_api(
            restApiId=api,
            patchOperations=[
                {"op": "replace", "path": "/name", "value": "responses-api-2"},
                {"op": "replace", "path": "/description", "value": "answers"},
            ],
        )
        self.assertEqual((updated["name"], updated["description"]), ("responses-api-2", "answers"))
        hello = [r for r in c.get_resources(restApiId=api)["items"] if r["path"] == "/hello"][0]
        self.assertEqual(c.get_resource(restApiId=api, resourceId=hello["id"])["path"], "/hello")
        method = c.get_method(restApiId=api, resourceId=hello["id"], httpMethod="GET")
        self.assertEqual(method["authorizationType"], "NONE")
        self.assertEqual(method["methodIntegration"]["type"], "MOCK")
        integration = c.get_integration(restApiId=api, resourceId=hello["id"], httpMethod="GET")
        self.assertEqual(
            integration["integrationResponses"]["200"]["responseTemplates"]["application/json"],
            '{"version": 3}',
        )
        kinds = {r["responseType"]: r for r in c.get_gateway_responses(restApiId=api, limit=500)["items"]}
        self.assertTrue(kinds["THROTTLED"]["defaultResponse"])
        put = c.put_gateway_response(
            restApiId=api,
            responseType="RESOURCE_NOT_FOUND",
            statusCode="410",
            responseParameters={"gatewayresponse.header.x-why": "'no such path'"},
            responseTemplates={"application/json": '{"missing": true}'},
        )
        self.assertFalse(put["defaultResponse"])
        c.create_deployment(restApiId=api, stageName="live")
        self.assertEqual(self.hello(api), {"version": 3})
        status, body = self.data("/live/nowhere", f"{api}.execute-api.localhost")
        self.assertEqual((status, json.loads(body)), (410, {"missing": True}))
        c.delete_gateway_response(restApiId=api, responseType="RESOURCE_NOT_FOUND")
        back = c.get_gateway_response(restApiId=api, responseType="RESOURCE_NOT_FOUND")
        self.assertTrue(back["defaultResponse"])
        self.assertEqual(
            self.code(lambda: c.get_gateway_response(restApiId=api, responseType="WAF_FILTERED")),
            "NotFoundException",
        )

    # -- import, put, deploy, roll back, canary ---------------------------

    def test_import_deploy_rollback_and_canary(self):
        c = self.client
        api = c.import_rest_api(body=mock_api("hello-api", 1))["id"]
        d1 = c.create_deployment(restApiId=api, stageName="live", description="v1")["id"]
        self.assertEqual(self.hello(api), {"version": 1})

        # PutRestApi (overwrite) a second version, deploy it: served.
        c.put_rest_api(restApiId=api, mode="overwrite", body=mock_api("hello-api", 2, "/new"))
        d2 = c.create_deployment(restApiId=api, stageName="live", description="v2")["id"]
        self.assertEqual(self.hello(api), {"version": 2})
        status, _ = self.data("/live/new", f"{api}.execute-api.localhost")
        self.assertEqual(status, 200)
        self.assertEqual(c.get_stage(restApiId=api, stageName="live")["deploymentId"], d2)

        # The served deployment cannot be deleted.
        self.assertEqual(
            self.code(lambda: c.delete_deployment(restApiId=api, deploymentId=d2)),
            "BadRequestException",
        )

        # Roll back: the old behaviour is served, the new route gone.
        c.update_stage(
            restApiId=api,
            stageName="live",
            patchOperations=[{"op": "replace", "path": "/deploymentId", "value": d1}],
        )
        self.assertEqual(self.hello(api), {"version": 1})
        status, _ = self.data("/live/new", f"{api}.execute-api.localhost")
        self.assertNotEqual(status, 200)

        # A canary: version 3 on half the traffic, then promoted.
        c.put_rest_api(restApiId=api, mode="overwrite", body=mock_api("hello-api", 3))
        d3 = c.create_deployment(
            restApiId=api,
            stageName="live",
            canarySettings={"percentTraffic": 50.0, "stageVariableOverrides": {"color": "green"}},
        )["id"]
        stage = c.get_stage(restApiId=api, stageName="live")
        self.assertEqual(stage["deploymentId"], d1)
        self.assertEqual(stage["canarySettings"]["deploymentId"], d3)
        seen = [self.hello(api)["version"] for _ in range(200)]
        canary = seen.count(3)
        self.assertEqual(canary + seen.count(1), 200)
        self.assertTrue(50 <= canary <= 150, f"{canary} of 200 on the canary at 50%")

        c.update_stage(
            restApiId=api,
            stageName="live",
            patchOperations=[
                {"op": "replace", "path": "/canarySettings/percentTraffic", "value": "0.0"},
                {"op": "copy", "from": "/canarySettings/stageVariableOverrides", "path": "/variables"},
                {"op": "copy", "from": "/canarySettings/deploymentId", "path": "/deploymentId"},
            ],
        )
        stage = c.get_stage(restApiId=api, stageName="live")
        self.assertEqual(stage["deploymentId"], d3)
        self.assertEqual(stage["variables"]["color"], "green")
        self.assertEqual(stage["canarySettings"]["percentTraffic"], 0.0)
        self.assertEqual({self.hello(api)["version"] for _ in range(20)}, {3})
        c.update_stage(
            restApiId=api,
            stageName="live",
            patchOperations=[{"op": "remove", "path": "/canarySettings"}],
        )
        self.assertNotIn("canarySettings", c.get_stage(restApiId=api, stageName="live"))
        deployments = [d["id"] for d in c.get_deployments(restApiId=api)["items"]]
        self.assertEqual(deployments, [d1, d2, d3])
        c.delete_deployment(restApiId=api, deploymentId=d2)
        self.assertEqual(self.code(lambda: c.get_deployment(restApiId=api, deploymentId=d2)), "NotFoundException")

        # Exported as the stage serves it, JSON and YAML.
        out = c.get_export(restApiId=api, stageName="live", exportType="oas30",
                           parameters={"extensions": "integrations"}, accepts="application/json")
        self.assertEqual(out["contentType"], "application/json")
        doc = json.loads(out["body"].read())
        self.assertEqual(doc["openapi"], "3.0.1")
        self.assertEqual(doc["paths"]["/hello"]["get"]["x-amazon-apigateway-integration"]["type"], "mock")
        out = c.get_export(restApiId=api, stageName="live", exportType="swagger", accepts="application/yaml")
        self.assertEqual(out["contentType"], "application/yaml")
        self.assertIn(b'swagger: "2.0"', out["body"].read())

        # Deleted: the API and its stages are gone.
        c.delete_stage(restApiId=api, stageName="live")
        c.delete_rest_api(restApiId=api)
        self.assertEqual(self.code(lambda: c.get_rest_api(restApiId=api)), "NotFoundException")

    # -- keys, plans, quota, usage ----------------------------------------

    def test_key_plan_quota_and_usage(self):
        c = self.client
        key = c.create_api_key(name="quota-test", enabled=True)
        self.assertEqual(len(key["value"]), 40)
        self.assertNotIn("value", c.get_api_key(apiKey=key["id"], includeValue=True))
        plan = c.create_usage_plan(
            name="tiny",
            apiStages=[{"apiId": "petstore", "stage": "prod"}],
            quota={"limit": 3, "period": "DAY"},
            throttle={"rateLimit": 100.0, "burstLimit": 50},
        )
        self.assertEqual(plan["quota"]["limit"], 3)
        c.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
        self.assertEqual(
            [k["id"] for k in c.get_usage_plan_keys(usagePlanId=plan["id"])["items"]], [key["id"]]
        )
        self.assertEqual(
            [p["id"] for p in c.get_usage_plans(keyId=key["id"])["items"]], [plan["id"]]
        )
        headers = {"x-api-key": key["value"]}
        statuses = [self.data("/prod/pets", "petstore.execute-api.localhost", headers)[0] for _ in range(4)]
        self.assertEqual(statuses, [200, 200, 200, 429])

        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        usage = c.get_usage(usagePlanId=plan["id"], keyId=key["id"], startDate=today, endDate=today)
        self.assertEqual(usage["items"][key["id"]], [[3, 0]])

        c.update_usage(
            usagePlanId=plan["id"],
            keyId=key["id"],
            patchOperations=[{"op": "replace", "path": "/remaining", "value": "2"}],
        )
        statuses = [self.data("/prod/pets", "petstore.execute-api.localhost", headers)[0] for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 429])

        # A disabled key is refused; the plan changes without a redeploy.
        c.update_api_key(apiKey=key["id"], patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}])
        self.assertEqual(self.data("/prod/pets", "petstore.execute-api.localhost", headers)[0], 403)
        updated = c.update_usage_plan(
            usagePlanId=plan["id"],
            patchOperations=[{"op": "replace", "path": "/quota/limit", "value": "10"}],
        )
        self.assertEqual(updated["quota"]["limit"], 10)
        c.delete_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"])
        c.delete_usage_plan(usagePlanId=plan["id"])
        c.delete_api_key(apiKey=key["id"])
        self.assertEqual(self.code(lambda: c.get_api_key(apiKey=key["id"])), "NotFoundException")

    def test_import_api_keys_csv(self):
        c = self.client
        out = c.import_api_keys(
            body=b"Name,key,description,Enabled\ncsv-one,csv-key-0123456789abcdef,first,TRUE\n",
            format="csv",
        )
        self.assertEqual(len(out["ids"]), 1)
        keys = c.get_api_keys(nameQuery="csv-")["items"]
        self.assertEqual([k["name"] for k in keys], ["csv-one"])
        self.assertTrue(keys[0]["enabled"])
        c.delete_api_key(apiKey=out["ids"][0])

    # -- domains, cache ---------------------------------------------------

    def test_domain_and_base_path_mapping(self):
        c = self.client
        c.create_domain_name(domainName="api.example.test")
        c.create_base_path_mapping(domainName="api.example.test", basePath="v1", restApiId="petstore", stage="dev")
        mappings = c.get_base_path_mappings(domainName="api.example.test")["items"]
        self.assertEqual(mappings, [{"basePath": "v1", "restApiId": "petstore", "stage": "dev"}])
        status, body = self.data("/v1/pets", "api.example.test")
        self.assertEqual(status, 200, body)
        status, _ = self.data("/v2/pets", "api.example.test")
        self.assertEqual(status, 403)
        c.delete_base_path_mapping(domainName="api.example.test", basePath="v1")
        c.delete_domain_name(domainName="api.example.test")
        self.assertEqual(
            self.code(lambda: c.get_domain_name(domainName="api.example.test")), "NotFoundException"
        )

    def test_flush_stage_cache_and_stage_settings(self):
        c = self.client
        c.flush_stage_cache(restApiId="petstore", stageName="prod")
        self.assertEqual(
            self.code(lambda: c.flush_stage_cache(restApiId="petstore", stageName="nope")),
            "NotFoundException",
        )
        stage = c.update_stage(
            restApiId="petstore",
            stageName="dev",
            patchOperations=[
                {"op": "replace", "path": "/~1pets/GET/throttling/rateLimit", "value": "7"},
                {"op": "replace", "path": "/~1pets/GET/throttling/burstLimit", "value": "3"},
                {"op": "replace", "path": "/variables/extra", "value": "yes"},
            ],
        )
        self.assertEqual(stage["methodSettings"]["~1pets/GET"]["throttlingRateLimit"], 7.0)
        self.assertEqual(stage["variables"]["extra"], "yes")
        self.assertEqual(
            self.code(lambda: c.update_stage(
                restApiId="petstore", stageName="dev",
                patchOperations=[{"op": "replace", "path": "/nonsense", "value": "1"}])),
            "BadRequestException",
        )

    # -- security ---------------------------------------------------------

    def test_unsigned_and_wrongly_signed_calls_are_refused(self):
        unsigned = self.make_client(ACCESS_KEY, SECRET, signature_version=botocore.UNSIGNED)
        self.assertEqual(self.code(unsigned.get_rest_apis), "MissingAuthenticationTokenException")
        wrong = self.make_client(ACCESS_KEY, "not-the-secret")
        self.assertEqual(self.code(wrong.get_rest_apis), "InvalidSignatureException")
        unknown = self.make_client("AKIDNOBODY", SECRET)
        self.assertEqual(self.code(unknown.get_rest_apis), "UnrecognizedClientException")
        # A refused change changes nothing.
        self.assertEqual(self.code(lambda: wrong.create_rest_api(name="sneaky")), "InvalidSignatureException")
        names = [a["name"] for a in self.client.get_rest_apis()["items"]]
        self.assertNotIn("sneaky", names)
        # The secret is printed once, on purpose, in the demo's welcome line;
        # no refusal or audit line carries it.
        with open(self.log.name) as f:
            lines = [l for l in f.read().splitlines() if SECRET in l]
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("  AWS_ACCESS_KEY_ID="), lines)

    # -- the usage page in a browser --------------------------------------

    def test_usage_page_in_headless_chromium(self):
        c = self.client
        api = c.import_rest_api(body=mock_api("page-api", 7))["id"]
        c.create_deployment(restApiId=api, stageName="page")
        for _ in range(6):
            status, _ = self.data("/page/hello", f"{api}.execute-api.localhost")
            self.assertEqual(status, 200)
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        self.assertIsNotNone(browser, "chromium is needed (.ci/run installs it)")
        # A browser cannot sign SigV4: the page takes Basic with a management credential.
        url = (f"http://{ACCESS_KEY}:{urllib.parse.quote(SECRET, safe='')}"
               f"@127.0.0.1:{self.admin}/")
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        row = f'data-api="{api}" data-stage="page"'
        dom = ""
        deadline = time.time() + 15
        while time.time() < deadline:
            out = subprocess.run([browser, *flags, "--dump-dom", url],
                                 capture_output=True, text=True, timeout=60)
            dom = out.stdout
            if row in dom and 'data-figure="requests">6<' in dom.split(row, 1)[1].split("</tr>", 1)[0]:
                break
            time.sleep(0.5)  # the usage reporter delivers within a second
        self.assertIn(row, dom)
        cells = dict(re.findall(r'data-figure="([^"]+)">([^<]*)<', dom.split(row, 1)[1].split("</tr>", 1)[0]))
        self.assertEqual(cells["requests"], "6", dom)
        self.assertEqual(cells["4xx"], "0")
        self.assertEqual(cells["5xx"], "0")
        self.assertRegex(cells["p50"], r"^\d+\.\d\d$")
        demo = re.search(r'<tr data-key="[^"]+"><td>demo</td>.*?</tr>', dom)
        self.assertIsNotNone(demo, dom)
        self.assertIn('data-figure="plan">basic<', demo.group(0))
        shot = os.path.join(ROOT, "target", "usage-page.png")
        subprocess.run([browser, *flags, "--window-size=1280,800", f"--screenshot={shot}", url],
                       capture_output=True, timeout=60, check=True)
        self.assertGreater(os.path.getsize(shot), 1000)
        print(f"\nusage page screenshot: {shot}", file=sys.stderr)
        # Without the login: 401 and the Basic challenge, no figures.
        conn = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        conn.request("GET", "/")
        res = conn.getresponse()
        self.assertEqual(res.status, 401)
        self.assertIn("Basic", res.getheader("www-authenticate"))
        self.assertNotIn(b"data-figure", res.read())
        conn.close()

    # -- the aws CLI ------------------------------------------------------

    def aws(self, *args):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_DEFAULT_REGION=REGION, AWS_PAGER="")
        out = subprocess.run(
            ["aws", "apigateway", *args, "--endpoint-url", self.endpoint, "--output", "json"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_aws_cli(self):
        apis = json.loads(self.aws("get-rest-apis"))
        self.assertIn("petstore", [a["id"] for a in apis["items"]])
        stage = json.loads(self.aws("get-stage", "--rest-api-id", "petstore", "--stage-name", "prod"))
        self.assertEqual(stage["stageName"], "prod")
        target = os.path.join(self.tmp.name, "export.json")
        self.aws("get-export", "--rest-api-id", "petstore", "--stage-name", "prod",
                 "--export-type", "oas30", target)
        with open(target) as f:
            self.assertIn("/pets", json.load(f)["paths"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
