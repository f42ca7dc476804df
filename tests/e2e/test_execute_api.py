"""The local execute-api (sme.local.aws.execute_api) with functions other than sme's proxy: what a Lambda
proxy can do wrong, and what API Gateway answers then. Real runtime processes, real HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import zipfile

import pytest

CODE = '''
import json, time
def ok(event, context):
    print("a handler's print goes to its log, not into the reply")
    return {"statusCode": 201, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"path": event["path"], "body": event["body"], "b64": event["isBase64Encoded"],
                                "query": event["queryStringParameters"]})}
def boom(event, context):
    raise RuntimeError("the handler failed")
def slow(event, context):
    time.sleep(5)
def bad(event, context):
    return "not a proxy response"
'''


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", CODE)
    return buf.getvalue()


@pytest.fixture
def api(boto, moto):
    role = boto("iam").create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    lam, apigw = boto("lambda"), boto("apigateway")
    rest = apigw.create_rest_api(name="t")["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=rest)["items"] if r["path"] == "/")
    for name, timeout in (("ok", 3), ("boom", 3), ("slow", 1), ("bad", 3)):
        arn = lam.create_function(FunctionName=name, Runtime="python3.11", Role=role, Handler=f"app.{name}",
                                  Code={"ZipFile": _zip()}, Timeout=timeout)["FunctionArn"]
        res = apigw.create_resource(restApiId=rest, parentId=root, pathPart=name)["id"]
        apigw.put_method(restApiId=rest, resourceId=res, httpMethod="ANY", authorizationType="NONE")
        apigw.put_integration(restApiId=rest, resourceId=res, httpMethod="ANY", type="AWS_PROXY",
                              integrationHttpMethod="POST",
                              uri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations")
    apigw.create_deployment(restApiId=rest, stageName="v1")
    return f"{moto.url}/restapis/{rest}/v1/_user_request_"


def call(url: str, body: bytes = b"hi") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_proxy_reply_comes_back_as_sent_and_prints_stay_out_of_it(api):
    status, body = call(f"{api}/ok?x=1", b"1,2,3")
    assert status == 201
    assert json.loads(body) == {"path": "/ok", "body": "1,2,3", "b64": False, "query": {"x": "1"}}
    status, body = call(f"{api}/ok", b"\xff\xfe binary")
    assert status == 201 and json.loads(body)["b64"] is True, "a body that is not UTF-8 travels base64-encoded"


def test_what_api_gateway_answers_when_the_function_goes_wrong(api):
    assert call(f"{api}/boom") == (502, b'{"message": "Internal server error"}')
    assert call(f"{api}/bad") == (502, b'{"message": "Internal server error"}')
    assert call(f"{api}/slow") == (502, b'{"message": "Internal server error"}'), "past its 1 s timeout"
    assert call(f"{api}/ok")[0] == 201, "the environments that failed are replaced, the others reused"
    assert call(f"{api.replace('/v1/', '/v9/')}/ok")[0] == 403, "an undeployed stage is not a route"
