"""The twin's fast front (sme.local.aws.front): the data plane keeps the twin's promises.

Web pages are refused on the data plane as on the control plane; the front door (API Gateway and its
Lambda proxy) publishes AWS/ApiGateway and AWS/Lambda metrics as AWS does; every InvokeEndpoint is
counted in OverheadLatency, the time the twin itself added.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def post(url: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers, method="POST"),
                                    timeout=30) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("extra", [{"Origin": "https://evil.example"}, {"Host": "rebound.evil.example"}])
def test_a_web_page_cannot_invoke_an_endpoint(twin, extra):
    url = f"{twin.url}/endpoints/{twin.endpoint}/invocations"
    request = AWSRequest("POST", url, data=twin.payload_rows[0].encode(), headers={"Content-Type": "text/csv"})
    SigV4Auth(Credentials("local", "local"), "sagemaker", "us-east-1").add_auth(request)
    status, body = post(url, twin.payload_rows[0].encode(), {**dict(request.prepare().headers), **extra})
    assert status == 403 and b"refused" in body, (status, body)


def _front_door(twin) -> str:
    from sme.gateway.package import HANDLER, handler_zip

    role = twin.client("iam").create_role(RoleName="front-door-metrics", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    arn = twin.client("lambda").create_function(
        FunctionName="front-door-metrics", Runtime="python3.11", Role=role, Handler=HANDLER, Code={"ZipFile": handler_zip()},
        Environment={"Variables": {"SME_ENDPOINT_NAME": twin.endpoint}})["FunctionArn"]
    apigw = twin.client("apigateway")
    api = apigw.create_rest_api(name="front-door-metrics")["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=api)["items"] if r["path"] == "/")
    res = apigw.create_resource(restApiId=api, parentId=root, pathPart="invoke")["id"]
    apigw.put_method(restApiId=api, resourceId=res, httpMethod="POST", authorizationType="NONE")
    apigw.put_integration(restApiId=api, resourceId=res, httpMethod="POST", type="AWS_PROXY", integrationHttpMethod="POST",
                          uri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations")
    apigw.create_deployment(restApiId=api, stageName="prod")
    return f"{twin.url}/restapis/{api}/prod/_user_request_"


def _sums(cw, queries: dict[str, tuple[str, str, str, list]]) -> dict[str, float]:
    end = datetime.now(timezone.utc) + timedelta(minutes=1)
    reply = cw.get_metric_data(StartTime=end - timedelta(minutes=10), EndTime=end, MetricDataQueries=[
        {"Id": qid, "MetricStat": {"Metric": {"Namespace": ns, "MetricName": name, "Dimensions": dims},
                                   "Period": 60, "Stat": stat}} for qid, (ns, name, stat, dims) in queries.items()])
    return {r["Id"]: sum(r["Values"]) for r in reply["MetricDataResults"]}


def test_the_front_door_publishes_api_gateway_and_lambda_metrics(twin):
    url = _front_door(twin)
    row = twin.payload_rows[0].encode()
    statuses = [post(f"{url}/invoke", row, {"Content-Type": "text/csv"})[0] for _ in range(6)]
    statuses += [post(f"{url}/invoke", b"a,b", {"Content-Type": "text/csv"})[0]]  # the model refuses it: 502
    statuses += [post(f"{url}/nowhere", row, {})[0]]  # no such route: 403
    assert statuses == [200] * 6 + [502, 403]
    api = [{"Name": "ApiName", "Value": "front-door-metrics"}]
    stage = api + [{"Name": "Stage", "Value": "prod"}]
    fn = [{"Name": "FunctionName", "Value": "front-door-metrics"}]
    queries = {"count": ("AWS/ApiGateway", "Count", "Sum", api), "staged": ("AWS/ApiGateway", "Count", "Sum", stage),
               "e4": ("AWS/ApiGateway", "4XXError", "Sum", api), "e5": ("AWS/ApiGateway", "5XXError", "Sum", api),
               "latency": ("AWS/ApiGateway", "Latency", "SampleCount", api),
               "integration": ("AWS/ApiGateway", "IntegrationLatency", "SampleCount", api),
               "invocations": ("AWS/Lambda", "Invocations", "Sum", fn), "errors": ("AWS/Lambda", "Errors", "Sum", fn),
               "duration": ("AWS/Lambda", "Duration", "SampleCount", fn)}
    deadline = time.time() + 20  # `sme local start` publishes every 5 s
    while (found := _sums(twin.client("cloudwatch"), queries))["count"] < 8 and time.time() < deadline:
        time.sleep(1)
    assert found == {"count": 8, "staged": 8, "e4": 1, "e5": 1, "latency": 8, "integration": 7,
                     "invocations": 7, "errors": 0, "duration": 7}, found


def test_every_invocation_is_counted_in_model_and_overhead_latency(twin):
    cw, runtime = twin.client("cloudwatch"), twin.client("sagemaker-runtime")
    dims = [{"Name": "EndpointName", "Value": twin.endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}]
    queries = {q: ("AWS/SageMaker", name, "SampleCount" if name != "Invocations" else "Sum", dims)
               for q, name in (("invocations", "Invocations"), ("model", "ModelLatency"),
                               ("overhead", "OverheadLatency"))}
    time.sleep(6)  # what earlier tests sent is published first
    before = _sums(cw, queries)
    for _ in range(10):
        runtime.invoke_endpoint(EndpointName=twin.endpoint, ContentType="text/csv", Body=twin.payload_rows[0])
    deadline = time.time() + 20
    while (after := _sums(cw, queries))["invocations"] < before["invocations"] + 10 and time.time() < deadline:
        time.sleep(1)
    assert {k: after[k] - before[k] for k in queries} == {"invocations": 10, "model": 10, "overhead": 10}, (before, after)
