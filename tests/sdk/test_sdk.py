"""SDK generation, the way API Gateway users get it (issue 19).

The pet store's OpenAPI example is served by the petstore example; its
export (`--export oas30`) is validated with openapi-spec-validator (both
versions, JSON and YAML), a Python client is generated from it with
openapi-python-client, and that client lists, creates and reads pets
through the running gateway with an API key.

Run by .ci/run (which installs the generator and the validator):

    python3 tests/sdk/test_sdk.py

PETSTORE_BIN names the petstore binary (default target/debug/examples/petstore).
Every server listens on 127.0.0.1 and is stopped by its PID at the end.
"""

import importlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import yaml
from openapi_spec_validator import validate

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("PETSTORE_BIN", os.path.join(ROOT, "target", "debug", "examples", "petstore"))
KEY = "demo-key-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, log):
    proc = subprocess.Popen([BIN, *args], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        with open(log.name) as f:
            if "listening on" in f.read():
                return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    with open(log.name) as f:
        raise RuntimeError(f"{args} did not start:\n{f.read()}")


class GeneratedClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.procs = []
        bare, gw = free_port(), free_port()
        # The example's HTTP integrations go to the stage variable `upstream`,
        # a bare pet store on 9090 in examples/petstore.yaml: a free port here.
        with open(os.path.join(ROOT, "examples", "petstore.yaml")) as f:
            config = f.read().replace('upstream: "127.0.0.1:9090"', f'upstream: "127.0.0.1:{bare}"')
        cls.config = os.path.join(cls.tmp.name, "petstore.yaml")
        with open(cls.config, "w") as f:
            f.write(config)
        cls.openapi = os.path.join(ROOT, "examples", "petstore-openapi.yaml")
        gateway = ["--config", cls.config, "--openapi", cls.openapi]
        for args in (
            ["--bare", "--listen", f"127.0.0.1:{bare}"],
            ["--quiet", *gateway, "--listen", f"127.0.0.1:{gw}"],
        ):
            log = open(os.path.join(cls.tmp.name, f"log{len(cls.procs)}"), "w")
            cls.procs.append(start(args, log))
        cls.base = f"http://127.0.0.1:{gw}/prod"
        cls.exports = {}
        for kind in ("oas30", "swagger"):
            for fmt in ("json", "yaml"):
                extra = ["--yaml"] if fmt == "yaml" else []
                out = subprocess.run(
                    [BIN, *gateway, "--listen", f"127.0.0.1:{gw}", "--export", kind, *extra],
                    check=True, capture_output=True, text=True, timeout=60,
                ).stdout
                cls.exports[(kind, fmt)] = json.loads(out) if fmt == "json" else yaml.safe_load(out)
        # The example's own config (SigV4, a VTL and a minijinja mapping).
        for kind in ("oas30", "swagger"):
            out = subprocess.run(
                [BIN, "--export", kind], check=True, capture_output=True, text=True, timeout=60,
            ).stdout
            cls.exports[(kind, "config")] = json.loads(out)
        spec = os.path.join(cls.tmp.name, "export.json")
        with open(spec, "w") as f:
            json.dump(cls.exports[("oas30", "json")], f)
        out = os.path.join(cls.tmp.name, "client")
        subprocess.run(
            [sys.executable, "-m", "openapi_python_client", "generate", "--path", spec, "--output-path", out, "--meta", "none"],
            check=True, capture_output=True, text=True, timeout=300,
        )
        sys.path.insert(0, cls.tmp.name)
        cls.sdk = importlib.import_module("client")

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        cls.tmp.cleanup()

    def test_every_export_passes_the_validator(self):
        for (kind, fmt), doc in self.exports.items():
            with self.subTest(kind=kind, fmt=fmt):
                validate(doc)
                if fmt == "yaml":
                    self.assertEqual(doc, self.exports[(kind, "json")])

    def client(self, key=KEY):
        headers = {"x-api-key": key} if key else {}
        return self.sdk.Client(base_url=self.base, headers=headers, raise_on_unexpected_status=False)

    def test_the_generated_client_lists_creates_and_reads_pets(self):
        get_pets = importlib.import_module("client.api.default.get_pets")
        post_pets = importlib.import_module("client.api.default.post_pets")
        get_pet = importlib.import_module("client.api.default.get_pets_pet_id")
        models = importlib.import_module("client.models")

        listed = get_pets.sync_detailed(client=self.client())
        self.assertEqual(listed.status_code, 200)
        before = json.loads(listed.content)
        self.assertGreaterEqual(len(before), 3)

        new = models.NewPet(type_=models.NewPetType.CAT, price=12.5)
        created = post_pets.sync_detailed(client=self.client(), body=new)
        self.assertEqual(created.status_code, 201, created.content)
        pet = json.loads(created.content)
        self.assertEqual(pet["type"], "cat")
        self.assertEqual(created.headers["location"], f"/pets/{pet['id']}")

        self.assertEqual(len(json.loads(get_pets.sync_detailed(client=self.client()).content)), len(before) + 1)

        # A read goes through the example's http integration (the bare pet
        # store, another process with the sample's three pets) and its VTL
        # response template.
        read = get_pet.sync_detailed(pet_id="2", client=self.client())
        self.assertEqual(read.status_code, 200, read.content)
        body = json.loads(read.content)
        self.assertEqual((body["id"], body["kind"], body["tier"]), (2, "cat", "gold"))
        self.assertTrue(body["requestId"])

    def test_an_http_proxy_through_a_stage_variable(self):
        # /store/{proxy+} goes whole to the stage's `upstream` (the bare store).
        import httpx
        res = httpx.get(f"{self.base}/store/pets/3", headers={"x-api-key": KEY})
        self.assertEqual(res.status_code, 200, res.text)
        self.assertEqual(res.json()["type"], "fish")
        self.assertEqual(httpx.get(f"{self.base}/store/pets/3").status_code, 403)

    def test_the_gateway_still_refuses_what_it_refuses(self):
        get_pets = importlib.import_module("client.api.default.get_pets")
        post_pets = importlib.import_module("client.api.default.post_pets")
        models = importlib.import_module("client.models")
        self.assertEqual(get_pets.sync_detailed(client=self.client(key=None)).status_code, 403)
        # A body the model refuses (a negative price): the request validator's 400.
        bad = models.NewPet(type_=models.NewPetType.DOG, price=-1)
        refused = post_pets.sync_detailed(client=self.client(), body=bad)
        self.assertEqual(refused.status_code, 400)
        self.assertEqual(json.loads(refused.content), {"message": "Invalid request body"})


if __name__ == "__main__":
    unittest.main(verbosity=2)
