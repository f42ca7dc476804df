"""Production features end to end: the real `sme` as a subprocess against the moto server on loopback.

Autoscaling registered around updates and removed with its section, guarded updates (DeploymentConfig,
auto-rollback alarms), `sme rollback`, and preflight stopping a deploy before any mutating call.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_deploy import deploy_args, model_tar  # noqa: F401  (fixture)

RID = "endpoint/churn/variant/AllTraffic"


def targets(boto):
    return boto("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]


def policies(boto):
    return boto("application-autoscaling").describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]


def write_config(tmp_path, vpc, model_tar, *, count=2, extra=""):
    cfg = tmp_path / "sme.yaml"
    subnets = json.dumps(vpc["subnets"])
    cfg.write_text(f"""
name: churn
region: us-east-1
model:
  image: 683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1
  model_data: {model_tar}
  role: arn:aws:iam::123456789012:role/SageMakerRole
network:
  subnets: {subnets}
  security_groups: [{vpc["security_group"]}]
endpoint:
  variants:
    - {{name: AllTraffic, instance_type: ml.m5.large, count: {count}}}
{extra}""")
    return str(cfg)


FAST = ("--poll-interval", "0.05s", "--timeout", "60s")


def test_autoscaling_is_registered_wrapped_around_updates_and_removed(sme, vpc, model_tar, boto, moto, tmp_path):
    first = sme(*deploy_args(vpc, model_tar, "--min", "2", "--max", "6", "--target", "150"))
    assert first.returncode == 0, first.stderr
    [target] = targets(boto)
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (RID, 2, 6)
    [policy] = policies(boto)
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["TargetValue"] == 150.0
    assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert (config["ScaleInCooldown"], config["ScaleOutCooldown"]) == (300, 60)

    moto.recorder.reset()
    again = sme(*deploy_args(vpc, model_tar, "--min", "2", "--max", "6", "--target", "150"))
    assert again.returncode == 0 and moto.recorder.mutating() == [], moto.recorder.mutating()

    # the fleet was scaled out to 5; a deploy of a changed spec must not reset it
    boto("sagemaker").update_endpoint_weights_and_capacities(
        EndpointName="churn", DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 5}])
    moto.recorder.reset()
    update = sme(*deploy_args(vpc, model_tar, "--min", "2", "--max", "6", "--target", "150", count=3))
    assert update.returncode == 0, update.stderr
    ops = [c.operation for c in moto.recorder.mutating() if c.service in ("sagemaker", "application-autoscaling")]
    assert ops == ["CreateEndpointConfig", "DeleteScalingPolicy", "DeregisterScalableTarget", "UpdateEndpoint",
                   "RegisterScalableTarget", "PutScalingPolicy"], ops
    assert boto("sagemaker").describe_endpoint(EndpointName="churn")["ProductionVariants"][0][
        "DesiredInstanceCount"] == 5, "RetainAllVariantProperties should keep the scaled-out count"

    moto.recorder.reset()
    removed = sme(*deploy_args(vpc, model_tar, count=3))
    assert removed.returncode == 0, removed.stderr
    assert targets(boto) == [] and policies(boto) == []
    assert [c.operation for c in moto.recorder.mutating()] == ["DeleteScalingPolicy", "DeregisterScalableTarget"]


def test_blue_green_update_sends_the_deployment_config_and_creates_alarms(sme, vpc, model_tar, boto, tmp_path):
    update = """    update:
      strategy: canary
      canary_size: 10
      wait: 5m
      termination_wait: 2m
      alarms: auto
      latency_threshold: 500ms
"""
    assert sme("deploy", "-c", write_config(tmp_path, vpc, model_tar, count=2), *FAST).returncode == 0
    result = sme("deploy", "-c", write_config(tmp_path, vpc, model_tar, count=3, extra=update.replace("    ", "  ")),
                 *FAST)
    assert result.returncode == 0, result.stderr
    endpoint = boto("sagemaker").describe_endpoint(EndpointName="churn")
    config = endpoint["LastDeploymentConfig"]
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "CANARY", "WaitIntervalInSeconds": 300,
                       "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}
    assert config["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 120
    names = {a["AlarmName"] for a in config["AutoRollbackConfiguration"]["Alarms"]}
    assert names == {"sme-churn-AllTraffic-5xx", "sme-churn-AllTraffic-latency"}
    alarms = {a["AlarmName"]: a for a in boto("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert set(alarms) == names, "the alarms must exist before the update names them"
    assert alarms["sme-churn-AllTraffic-latency"]["Threshold"] == 500_000  # microseconds
    assert {d["Name"]: d["Value"] for d in alarms["sme-churn-AllTraffic-5xx"]["Dimensions"]} == \
        {"EndpointName": "churn", "VariantName": "AllTraffic"}
    assert sme("teardown", "--name", "churn").returncode == 0
    assert boto("cloudwatch").describe_alarms()["MetricAlarms"] == []


def test_rollback_returns_to_the_previous_config_and_verifies(sme, vpc, model_tar, boto):
    assert sme(*deploy_args(vpc, model_tar, count=2)).returncode == 0
    first = boto("sagemaker").describe_endpoint(EndpointName="churn")["EndpointConfigName"]
    assert sme(*deploy_args(vpc, model_tar, count=3)).returncode == 0
    second = boto("sagemaker").describe_endpoint(EndpointName="churn")["EndpointConfigName"]
    assert first != second

    result = sme("rollback", "--name", "churn", *FAST)
    assert result.returncode == 0, result.stderr
    endpoint = boto("sagemaker").describe_endpoint(EndpointName="churn")
    assert endpoint["EndpointConfigName"] == first
    assert endpoint["ProductionVariants"][0]["DesiredInstanceCount"] == 2
    assert "verified" in result.stderr

    named = sme("rollback", "--name", "churn", "--to", second, *FAST)
    assert named.returncode == 0, named.stderr
    assert boto("sagemaker").describe_endpoint(EndpointName="churn")["EndpointConfigName"] == second
    unknown = sme("rollback", "--name", "churn", "--to", "churn-config-nope", *FAST)
    assert unknown.returncode == 2 and "recorded history" in unknown.stderr


def test_rollback_that_sagemaker_undoes_is_reported(sme, vpc, model_tar):
    from sme.local.aws.patches.sagemaker import LIFECYCLE

    assert sme(*deploy_args(vpc, model_tar, count=2)).returncode == 0
    assert sme(*deploy_args(vpc, model_tar, count=3)).returncode == 0
    LIFECYCLE.rollback_next["churn"] = "health checks failed"
    result = sme("rollback", "--name", "churn", *FAST)
    assert result.returncode == 4, result.stderr


@pytest.fixture
def small_subnet(boto, vpc):
    """One /28 subnet (11 usable addresses in AWS) with all but one taken by network interfaces."""
    ec2 = boto("ec2")
    subnet = ec2.create_subnet(VpcId=vpc["vpc"], CidrBlock="10.0.9.0/28", AvailabilityZone="us-east-1a")["Subnet"]
    free = subnet["AvailableIpAddressCount"]
    for _ in range(free - 1):
        ec2.create_network_interface(SubnetId=subnet["SubnetId"])
    left = ec2.describe_subnets(SubnetIds=[subnet["SubnetId"]])["Subnets"][0]["AvailableIpAddressCount"]
    assert left == 1, left
    return subnet["SubnetId"]


def small_args(vpc, model_tar, subnet, *extra):
    return deploy_args(dict(vpc, subnets=[subnet]), model_tar, *extra)


def preflight_args(deploy: list[str]) -> list[str]:
    """The same experiment for `sme preflight` (it has no wait options)."""
    out, skip = ["preflight"], False
    for arg in deploy[1:]:
        if skip:
            skip = False
        elif arg in ("--poll-interval", "--timeout"):
            skip = True
        else:
            out.append(arg)
    return out


def test_preflight_fails_on_too_few_free_ips_before_any_change(sme, vpc, model_tar, small_subnet, moto):
    moto.recorder.reset()
    result = sme(*small_args(vpc, model_tar, small_subnet))
    assert result.returncode == 6, result.stderr
    assert small_subnet in result.stderr and "1 free IPs" in result.stderr and "needs 2" in result.stderr
    assert "larger subnet" in result.stderr, "the message should carry the fix"
    assert "HA: availability zones" in result.stderr and "WARN" in result.stderr
    assert moto.recorder.mutating() == [], "a failed preflight must stop the deploy before any change"
    standalone = sme(*preflight_args(small_args(vpc, model_tar, small_subnet)))
    assert standalone.returncode == 6 and "FAIL" in standalone.stdout
    skipped = sme(*small_args(vpc, model_tar, small_subnet, "--skip-preflight"))
    assert skipped.returncode == 0, skipped.stderr


@pytest.fixture
def quotas():
    from sme.local.aws.patches.service_quotas import QUOTAS

    QUOTAS.clear()
    yield QUOTAS
    QUOTAS.clear()


def test_preflight_fails_on_a_quota_of_zero_and_passes_otherwise(sme, vpc, model_tar, moto, quotas):
    quotas[("us-east-1", "ml.m5.large for endpoint usage")] = 0
    result = sme(*deploy_args(vpc, model_tar))
    assert result.returncode == 6, result.stderr
    assert "quota 0" in result.stderr and "request an increase" in result.stderr
    assert moto.recorder.mutating() == []

    quotas[("us-east-1", "ml.m5.large for endpoint usage")] = 4
    ok = sme(*preflight_args(deploy_args(vpc, model_tar)))
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert "need 2" in ok.stdout and "quota 4" in ok.stdout and "passed" in ok.stderr
    # an update runs both fleets: autoscaling max 3, doubled, is more than 4
    assert sme(*deploy_args(vpc, model_tar)).returncode == 0
    update = sme(*deploy_args(vpc, model_tar, "--max", "3", count=3))
    assert update.returncode == 6 and "need 6" in update.stderr, update.stderr


def test_preflight_fails_on_a_missing_role(sme, vpc, model_tar, moto):
    result = sme(*deploy_args(vpc, model_tar, role="arn:aws:iam::123456789012:role/Nope"))
    assert result.returncode == 6 and "does not exist" in result.stderr
    assert moto.recorder.mutating() == []


GATEWAY = """gateway:
  stage: prod
  path: invoke
  content_type: text/csv
  throttle: {rate: 20, burst: 40}
  quota: {limit: 5000, period: DAY}
"""


def test_front_door_is_created_key_required_and_removed_by_teardown(sme, vpc, model_tar, boto, tmp_path, moto):
    cfg = write_config(tmp_path, vpc, model_tar, extra=GATEWAY)
    first = sme("deploy", "-c", cfg, *FAST)
    assert first.returncode == 0, first.stderr
    state_file = tmp_path / ".sme" / "churn.json"
    state = json.loads(state_file.read_text())
    assert state_file.stat().st_mode & 0o777 == 0o600
    key = state["secrets"]["api_key"]
    url = state["outputs"]["gateway_url"]
    apigw = boto("apigateway")
    [api] = apigw.get_rest_apis()["items"]
    assert api["endpointConfiguration"]["types"] == ["REGIONAL"]
    assert url == f"{moto.url}/restapis/{api['id']}/prod/_user_request_/invoke"  # the local AWS's execute-api
    assert api["binaryMediaTypes"] == ["*/*"]
    resource = next(r for r in apigw.get_resources(restApiId=api["id"])["items"] if r["path"] == "/invoke")
    method = apigw.get_method(restApiId=api["id"], resourceId=resource["id"], httpMethod="POST")
    assert method["apiKeyRequired"] is True
    assert method["methodIntegration"]["type"] == "AWS_PROXY"
    [plan] = apigw.get_usage_plans()["items"]
    assert plan["throttle"] == {"rateLimit": 20.0, "burstLimit": 40}
    assert plan["quota"]["limit"] == 5000 and plan["quota"]["period"] == "DAY"
    assert plan["apiStages"] == [{"apiId": api["id"], "stage": "prod"}]
    [plan_key] = apigw.get_usage_plan_keys(usagePlanId=plan["id"])["items"]
    assert apigw.get_api_key(apiKey=plan_key["id"], includeValue=True)["value"] == key
    fn = boto("lambda").get_function(FunctionName="sme-churn-proxy")["Configuration"]
    assert fn["Environment"]["Variables"]["SME_ENDPOINT_NAME"] == "churn"
    policy = boto("iam").get_role_policy(RoleName="sme-churn-proxy", PolicyName="invoke-endpoint")["PolicyDocument"]
    invoke = next(s for s in policy["Statement"] if s["Sid"] == "InvokeThisEndpointOnly")
    assert invoke["Resource"] == ["arn:aws:sagemaker:us-east-1:123456789012:endpoint/churn"]

    status = sme("status", "--name", "churn")
    assert url in status.stdout and key not in status.stdout + status.stderr
    assert key in sme("status", "--name", "churn", "--show-secret").stdout
    again = sme("deploy", "-c", cfg, *FAST)
    assert again.returncode == 0 and "no changes" in again.stderr, again.stderr

    down = sme("teardown", "--name", "churn")
    assert down.returncode == 0, down.stderr
    for kind in ("usage-plan", "gateway-key", "gateway-api", "lambda", "log-group", "gateway-role"):
        assert kind in down.stdout, f"teardown did not name {kind}:\n{down.stdout}"
    assert apigw.get_rest_apis()["items"] == [] and apigw.get_api_keys()["items"] == []
    assert apigw.get_usage_plans()["items"] == []
    assert boto("lambda").list_functions()["Functions"] == []
    assert boto("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/sme-")["logGroups"] == []
    assert [r for r in boto("iam").list_roles()["Roles"] if r["RoleName"].startswith("sme-")] == []
    assert not state_file.exists()


def test_requests_through_the_front_door_run_the_real_proxy_to_the_endpoint(sme, vpc, model_tar, tmp_path, moto):
    """API Gateway -> Lambda -> InvokeEndpoint, each for real: the key and the usage plan's throttle are
    enforced by the local execute-api, the proxy's own code runs in a Lambda runtime process, and its
    InvokeEndpoint call reaches moto's sagemaker-runtime."""
    import urllib.error
    import urllib.request

    cfg = write_config(tmp_path, vpc, model_tar, extra=GATEWAY)
    assert sme("deploy", "-c", cfg, *FAST).returncode == 0
    state = json.loads((tmp_path / ".sme" / "churn.json").read_text())
    url, key = state["outputs"]["gateway_url"], state["secrets"]["api_key"]

    def post(target, body=b"1,2,3", headers=None):
        req = urllib.request.Request(target, data=body, method="POST",
                                     headers={"Content-Type": "text/csv", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    assert post(url)[:2] == (403, b'{"message": "Forbidden"}'), "no key, no entry"
    assert post(url, headers={"x-api-key": "not-the-key"})[0] == 403
    assert post(url.replace("/invoke", "/nowhere"), headers={"x-api-key": key})[:2] == \
        (403, b'{"message": "Missing Authentication Token"}')
    moto.recorder.reset()
    status, body, headers = post(url, headers={"x-api-key": key})
    assert (status, body) == (200, b"body"), body  # moto's canned InvokeEndpoint reply, through the proxy
    assert "X-Sme-Latency-Ms" in headers
    assert [c.path for c in moto.recorder.calls if c.service == "sagemaker"] == ["/endpoints/churn/invocations"]
    assert post(url, body=b"", headers={"x-api-key": key})[0] == 400, "the proxy's own answer to an empty body"

    via = sme("invoke", "--name", "churn", "--body", "1,2,3", "--via", "gateway")
    assert via.returncode == 0 and via.stdout == "body", via.stderr

    # the plan allows 20 requests/s with a burst of 40: 70 sent at once (the throttle is checked as each
    # arrives, before the proxy runs) meet 429s however slow the machine; the token bucket's exact
    # arithmetic is tested on an injected clock in tests/unit/local/aws/test_usage_plans.py
    import time
    from concurrent.futures import ThreadPoolExecutor

    started = time.monotonic()
    with ThreadPoolExecutor(70) as pool:
        statuses = list(pool.map(lambda _: post(url, headers={"x-api-key": key})[0], range(70)))
    took = time.monotonic() - started
    assert set(statuses) == {200, 429}, statuses
    assert 40 <= statuses.count(200) <= 40 + 20 * took + 1, (statuses.count(200), took)


def test_a_load_test_through_the_front_door_reconciles_with_the_gateway(sme, vpc, model_tar, tmp_path, moto):
    """`sme loadtest` with `gateway: churn`: the key from the state file, every request through API Gateway's
    key check, the proxy and InvokeEndpoint; the counts match what the local execute-api served."""
    assert sme("deploy", "-c", write_config(tmp_path, vpc, model_tar, extra=GATEWAY), *FAST).returncode == 0
    (tmp_path / "lt.yaml").write_text("target: {gateway: churn}\npayload: {body: '1,2,3', content_type: text/csv}\n"
                                      "stages:\n  - {duration: 3s, rate: 8}\nslo: {error_rate: 0}\n")
    moto.recorder.reset()
    run = sme("loadtest", "-c", "lt.yaml", "--out", "run")
    assert run.returncode == 0, run.stderr + run.stdout
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    served = [c for c in moto.recorder.calls if c.service == "execute-api"]
    invoked = [c for c in moto.recorder.calls if c.service == "sagemaker" and c.path.endswith("/invocations")]
    assert s["requests"] == len(served) == len(invoked) == 24 and s["failures"] == 0


def test_removing_the_gateway_section_removes_the_front_door(sme, vpc, model_tar, boto, tmp_path):
    assert sme("deploy", "-c", write_config(tmp_path, vpc, model_tar, extra=GATEWAY), *FAST).returncode == 0
    result = sme("deploy", "-c", write_config(tmp_path, vpc, model_tar), *FAST)
    assert result.returncode == 0, result.stderr
    assert boto("apigateway").get_rest_apis()["items"] == []
    assert boto("lambda").list_functions()["Functions"] == []
    state = json.loads((tmp_path / ".sme" / "churn.json").read_text())
    assert "api_key" not in state["secrets"] and "gateway_url" not in state["outputs"]


def test_invoke_sends_one_request_and_shows_latency(sme, vpc, model_tar, tmp_path):
    import urllib.request

    assert sme(*deploy_args(vpc, model_tar)).returncode == 0
    from tests.conftest import FAKE_AWS  # noqa: F401

    payload = tmp_path / "row.csv"
    payload.write_text("1,2,3\n")
    result = sme("invoke", "--name", "churn", "--body", f"@{payload}", "--content-type", "text/csv",
                 "--via", "endpoint")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "body"  # moto's canned reply
    assert "200" in result.stderr and " ms via endpoint" in result.stderr
    missing = sme("invoke", "--name", "churn", "--body", "@nope.csv")
    assert missing.returncode == 2 and "nope.csv" in missing.stderr
    nogw = sme("invoke", "--name", "churn", "--body", "1,2", "--via", "gateway")
    assert nogw.returncode == 2 and "no front door" in nogw.stderr
    del urllib


def test_the_api_key_never_leaves_the_state_file(sme, vpc, model_tar, tmp_path, moto):
    """Every stream and file sme writes in a front-door lifecycle is scanned for the key's value."""
    # (no `{"lambda": {"use_docker": false}}` at /moto-api/config: it moves moto's functions to another
    # backend, where the twin's execute-api cannot find the proxy, and every request through it was a 500)
    cfg = write_config(tmp_path, vpc, model_tar, extra=GATEWAY)
    runs = [sme("-v", "deploy", "-c", cfg, *FAST), sme("-v", "deploy", "-c", cfg, *FAST, "--dry-run"),
            sme("status", "--name", "churn"), sme("status", "--name", "churn", "--json"),
            sme(*preflight_args(["deploy", "-c", cfg])),
            sme("-v", "invoke", "--name", "churn", "--body", "1,2,3", "--via", "gateway"),
            sme("-v", "invoke", "--name", "churn", "--body", "1,2,3", "--via", "endpoint")]
    state_file = tmp_path / ".sme" / "churn.json"
    key = json.loads(state_file.read_text())["secrets"]["api_key"]
    assert len(key) >= 20
    runs.append(sme("-v", "teardown", "--name", "churn"))
    # every run did its job: a run that crashed, or a request that never reached the proxy, "leaks nothing"
    for run in runs:
        assert run.returncode == 0, (run.args, run.returncode, run.stderr[-2000:])
    for run in runs:
        assert key not in run.stdout and key not in run.stderr, f"the API key leaked from {run.args[3:6]}"
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != state_file:
            assert key.encode() not in path.read_bytes(), f"the API key leaked into {path}"


def test_teardown_without_a_state_file_finds_everything_by_name_and_tag(sme, vpc, model_tar, boto, tmp_path):
    everything = GATEWAY + """autoscaling: {min: 2, max: 4, target: 100}
"""
    update = """  update: {strategy: all-at-once, alarms: auto}
"""
    cfg = write_config(tmp_path, vpc, model_tar, count=2, extra=everything)
    assert sme("deploy", "-c", cfg, *FAST).returncode == 0
    cfg = write_config(tmp_path, vpc, model_tar, count=3, extra=update + everything)
    deployed = sme("deploy", "-c", cfg, *FAST)
    assert deployed.returncode == 0, deployed.stderr
    assert boto("cloudwatch").describe_alarms(AlarmNamePrefix="sme-churn-")["MetricAlarms"], "alarms: auto made none"
    (tmp_path / ".sme" / "churn.json").unlink()

    down = sme("teardown", "--name", "churn")
    assert down.returncode == 0, down.stderr
    for kind in ("scaling-policy", "scalable-target", "alarm", "artifact", "usage-plan", "gateway-key",
                 "gateway-api", "lambda", "log-group", "gateway-role", "endpoint", "endpoint-config", "model"):
        assert f"found by tag (not in the state file): {kind} " in down.stderr, f"{kind} not rediscovered:\n{down.stderr}"
    assert targets(boto) == [] and policies(boto) == []
    assert boto("cloudwatch").describe_alarms(AlarmNamePrefix="sme-churn-")["MetricAlarms"] == []
    assert boto("apigateway").get_rest_apis()["items"] == [] and boto("apigateway").get_api_keys()["items"] == []
    assert boto("lambda").list_functions()["Functions"] == []
    assert boto("s3").list_buckets()["Buckets"] == [], "the artifact and its (sme-made, now empty) bucket are gone"
    for op, key in (("list_models", "Models"), ("list_endpoint_configs", "EndpointConfigs"), ("list_endpoints", "Endpoints")):
        assert getattr(boto("sagemaker"), op)()[key] == []


def test_changed_throttle_and_quota_update_the_usage_plan(sme, vpc, model_tar, boto, tmp_path, moto):
    assert sme("deploy", "-c", write_config(tmp_path, vpc, model_tar, extra=GATEWAY), *FAST).returncode == 0
    changed = GATEWAY.replace("{rate: 20, burst: 40}", "{rate: 50, burst: 80}").replace("limit: 5000", "limit: 9000")
    moto.recorder.reset()
    result = sme("deploy", "-c", write_config(tmp_path, vpc, model_tar, extra=changed), *FAST)
    assert result.returncode == 0, result.stderr
    assert [(c.method, c.path.split("/")[1]) for c in moto.recorder.mutating()] == [("PATCH", "usageplans")], \
        moto.recorder.mutating()
    [plan] = boto("apigateway").get_usage_plans()["items"]
    assert plan["throttle"] == {"rateLimit": 50.0, "burstLimit": 80}
    assert (plan["quota"]["limit"], plan["quota"]["period"]) == (9000, "DAY")
    moto.recorder.reset()
    again = sme("deploy", "-c", write_config(tmp_path, vpc, model_tar, extra=changed), *FAST)
    assert again.returncode == 0 and "no changes" in again.stderr, again.stderr
    assert moto.recorder.mutating() == []
