#!/usr/bin/env python3
"""Management calls at a steady rate, for benches/load.sh (MANAGEMENT_CALLS=N).

Signs every call with boto3 (AWS's model and signer) against the petstore's
`--admin-listen` endpoint with examples/petstore.yaml's demo credentials.
Each second it makes RATE calls, spread evenly: reads (GetRestApis,
GetStages, GetStage, GetUsagePlans, GetApiKeys, GetUsage, GetExport,
GetDeployments, GetResources) and, one call in ten, a write: an UpdateStage
that sets a stage variable on the `dev` stage (the lifecycle swaps its
routing table, as any change does). It stops by itself after SECONDS and
prints how many calls were answered, refused and failed.

    python3 benches/management_calls.py http://127.0.0.1:18092 10 120

Traffic goes only to the endpoint given (load.sh: 127.0.0.1).
"""

import datetime
import signal
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ACCESS_KEY = "AKIDADMINEXAMPLE"
SECRET = "admin/K7MDENG+bPxRfiCYEXAMPLEKEY"


def main():
    endpoint, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    client = boto3.client(
        "apigateway",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )
    today = datetime.date.today().isoformat()
    calls = [
        lambda: client.get_rest_apis(),
        lambda: client.get_stages(restApiId="petstore"),
        lambda: client.get_stage(restApiId="petstore", stageName="prod"),
        lambda: client.get_usage_plans(),
        lambda: client.get_api_keys(),
        lambda: client.get_usage(usagePlanId="production", startDate=today, endDate=today),
        lambda: client.get_export(restApiId="petstore", stageName="prod", exportType="oas30"),
        lambda: client.get_deployments(restApiId="petstore"),
        lambda: client.get_resources(restApiId="petstore"),
        lambda: client.update_stage(
            restApiId="petstore",
            stageName="dev",
            patchOperations=[{"op": "replace", "path": "/variables/tick", "value": str(time.time())}],
        ),
    ]
    counts = {"answered": 0, "refused": 0, "failed": 0}

    def report(*_):
        print(
            f"management calls: {counts['answered']} answered, {counts['refused']} refused, "
            f"{counts['failed']} failed",
            file=sys.stderr,
        )
        sys.exit(0)

    signal.signal(signal.SIGTERM, report)
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        try:
            calls[n % len(calls)]()
            counts["answered"] += 1
        except ClientError:
            counts["refused"] += 1
        except Exception:  # not up yet, or a timeout: counted, not fatal
            counts["failed"] += 1
        n += 1
        # The next call's slot; late calls are not made up in a burst.
        wait = start + n / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    report()


if __name__ == "__main__":
    main()
