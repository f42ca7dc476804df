"""Rebuilding the rest of a lost state from names and tags: artifacts, scaling, alarms, the front door.

Every resource sme makes for experiment X has a name derived from X and, where the service has tags, the
tag sme:experiment=X. Scaling targets carry no tags: they are taken only when the endpoint itself is
sme's (already in the state), since deleting an endpoint orphans its targets anyway.
"""

from __future__ import annotations

from typing import Any, Callable

from sme.aws import AwsError, aws_call, is_not_found
from sme.core.models import EXPERIMENT_TAG
from sme.core.names import default_bucket
from sme.state import DeployState

Found = list[str]


def discover_extras(aws: Any, experiment: str, state: DeployState) -> Found:
    found: Found = []
    for part in (_artifacts, _scaling, _alarms, _gateway):
        found += _tolerant(lambda: part(aws, experiment, state))
    return found


def _tolerant(fn: Callable[[], Found]) -> Found:
    try:
        return fn()
    except AwsError as exc:
        if is_not_found(exc.__cause__ or exc):
            return []
        raise


def _add(state: DeployState, found: Found, kind: str, name: str, arn: str = "", **extra: Any) -> None:
    if not state.find(kind, name):
        state.record(kind, name, arn, **extra)
        found.append(f"{kind} {name}")


def _artifacts(aws: Any, experiment: str, state: DeployState) -> Found:
    found: Found = []
    bucket = default_bucket(aws.account_id, aws.region)
    s3 = aws.client("s3")
    with aws_call("s3:ListObjectsV2", f"s3://{bucket}/{experiment}/"):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{experiment}/model-")
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    for key in keys:
        _add(state, found, "artifact", f"s3://{bucket}/{key}", f"arn:aws:s3:::{bucket}/{key}", bucket=bucket, key=key)
    with aws_call("s3:GetBucketTagging", bucket):
        tags = s3.get_bucket_tagging(Bucket=bucket).get("TagSet", [])
    if {"Key": "sme:managed", "Value": "true"} in tags:
        _add(state, found, "bucket", bucket, f"arn:aws:s3:::{bucket}")
    return found


def _scaling(aws: Any, experiment: str, state: DeployState) -> Found:
    found: Found = []
    if not state.find("endpoint", experiment):
        return found
    aas = aws.client("application-autoscaling")
    prefix = f"endpoint/{experiment}/variant/"
    with aws_call("application-autoscaling:DescribeScalableTargets", prefix):
        targets = [t for page in aas.get_paginator("describe_scalable_targets").paginate(ServiceNamespace="sagemaker")
                   for t in page["ScalableTargets"] if t["ResourceId"].startswith(prefix)]
    for target in targets:
        rid = target["ResourceId"]
        with aws_call("application-autoscaling:DescribeScalingPolicies", rid):
            policies = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=rid)["ScalingPolicies"]
        for policy in policies:
            _add(state, found, "scaling-policy", policy["PolicyName"], policy.get("PolicyARN", ""), resource_id=rid)
        _add(state, found, "scalable-target", rid, target.get("ScalableTargetARN", ""))
    return found


def _alarms(aws: Any, experiment: str, state: DeployState) -> Found:
    found: Found = []
    cw = aws.client("cloudwatch")
    with aws_call("cloudwatch:DescribeAlarms", f"sme-{experiment}-*"):
        alarms = cw.describe_alarms(AlarmNamePrefix=f"sme-{experiment}-")["MetricAlarms"]
    for alarm in alarms:
        with aws_call("cloudwatch:ListTagsForResource", alarm["AlarmName"]):
            tags = cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags", [])
        if {"Key": EXPERIMENT_TAG, "Value": experiment} in tags:
            _add(state, found, "alarm", alarm["AlarmName"], alarm["AlarmArn"])
    return found


def _gateway(aws: Any, experiment: str, state: DeployState) -> Found:
    found: Found = []
    name = f"sme-{experiment}"
    apigw = aws.client("apigateway")
    mine = lambda item: item.get("name") == name and (item.get("tags") or {}).get(EXPERIMENT_TAG) == experiment  # noqa: E731
    with aws_call("apigateway:GetUsagePlans", name):
        for plan in filter(mine, apigw.get_usage_plans(limit=500).get("items", [])):
            _add(state, found, "usage-plan", plan["id"], plan_name=name)
    with aws_call("apigateway:GetApiKeys", name):
        for key in filter(mine, apigw.get_api_keys(nameQuery=name, limit=500).get("items", [])):
            _add(state, found, "gateway-key", key["id"], key_name=name)
    with aws_call("apigateway:GetRestApis", name):
        for api in filter(mine, apigw.get_rest_apis(limit=500).get("items", [])):
            _add(state, found, "gateway-api", api["id"], api_name=name)
    function = f"sme-{experiment}-proxy"
    try:
        with aws_call("lambda:GetFunction", function):
            reply = aws.client("lambda").get_function(FunctionName=function)
    except AwsError as exc:
        if not is_not_found(exc.__cause__ or exc):
            raise
        reply = None
    if reply and (reply.get("Tags") or {}).get(EXPERIMENT_TAG) == experiment:
        _add(state, found, "lambda", function, reply["Configuration"]["FunctionArn"])
        _add(state, found, "log-group", f"/aws/lambda/{function}")
    iam = aws.client("iam")
    try:
        with aws_call("iam:ListRoleTags", function):
            tags = iam.list_role_tags(RoleName=function).get("Tags", [])
    except AwsError as exc:
        if not is_not_found(exc.__cause__ or exc):
            raise
        tags = []
    if {"Key": EXPERIMENT_TAG, "Value": experiment} in tags:
        _add(state, found, "gateway-role", function)
    return found
