"""A model's errors, end to end on the twin: what `sme loadtest` counts and what the front door answers.

Before the twin answered InvokeEndpoint errors with their real status, a load test in which every request
was a ModelError reported no failures and passed its error_rate SLO, and the front door answered 200.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path


def write_state(twin, experiment: str, endpoint: str) -> None:
    """What `sme deploy` records for an endpoint (the loadtest target reads it)."""
    path = Path(twin.env["SME_STATE_DIR"]) / f"{experiment}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "experiment": experiment, "region": "us-east-1", "resources": [
        {"kind": "endpoint", "name": endpoint, "arn": "", "extra": {}, "created_at": 0.0}],
        "endpoint_configs": [], "secrets": {}, "outputs": {}}))


def test_a_load_test_of_only_bad_rows_fails_every_request_and_its_error_rate_slo(twin, tmp_path):
    write_state(twin, "bad-rows", twin.endpoint)
    config = tmp_path / "loadtest.yaml"
    config.write_text("target: {endpoint: bad-rows}\npayload: {body: 'not,a,number', content_type: text/csv}\n"
                      "stages:\n  - {duration: 2s, users: 2}\nslo: {error_rate: 0.01}\n")
    run = subprocess.run([sys.executable, "-m", "sme", "loadtest", "-c", str(config), "--out", "run"],
                         env=twin.env, cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert run.returncode == 3, run.stderr + run.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["requests"] > 0 and summary["failures"] == summary["requests"], summary["errors"]
    assert [c["name"] for c in summary["slo"]["checks"] if not c["passed"]] == ["error_rate"]


def front_door(twin) -> str:
    """sme's front door (sme/gateway/handler.py) as a Lambda proxy behind a REST API, for the twin's endpoint."""
    from sme.gateway.package import HANDLER, handler_zip

    iam, lam, apigw = twin.client("iam"), twin.client("lambda"), twin.client("apigateway")
    role = iam.create_role(RoleName="front-door", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    urls = {}
    for name, endpoint in (("live", twin.endpoint), ("gone", "no-such-endpoint")):
        arn = lam.create_function(FunctionName=f"front-door-{name}", Runtime="python3.11", Role=role, Handler=HANDLER,
                                  Code={"ZipFile": handler_zip()}, Timeout=30,
                                  Environment={"Variables": {"SME_ENDPOINT_NAME": endpoint}})["FunctionArn"]
        rest = apigw.create_rest_api(name=f"front-door-{name}")["id"]
        root = next(r["id"] for r in apigw.get_resources(restApiId=rest)["items"] if r["path"] == "/")
        resource = apigw.create_resource(restApiId=rest, parentId=root, pathPart="invocations")["id"]
        apigw.put_method(restApiId=rest, resourceId=resource, httpMethod="POST", authorizationType="NONE")
        apigw.put_integration(restApiId=rest, resourceId=resource, httpMethod="POST", type="AWS_PROXY",
                              integrationHttpMethod="POST",
                              uri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations")
        apigw.create_deployment(restApiId=rest, stageName="prod")
        urls[name] = f"{twin.url}/restapis/{rest}/prod/_user_request_/invocations"
    return urls


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "text/csv"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, {"body": reply.read().decode()}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_front_door_maps_model_errors_and_unknown_endpoints_as_its_handler_says(twin):
    urls = front_door(twin)
    status, reply = post(urls["live"], twin.payload_rows[0].encode())
    assert status == 200 and 0.0 <= float(reply["body"]) <= 1.0
    status, reply = post(urls["live"], b"not,a,number")
    assert status == 502 and reply["error"] == "model error" and reply["model_status"] == 415, reply
    status, reply = post(urls["gone"], b"1,2")
    assert status == 503 and reply["error"] == "endpoint unavailable", reply
