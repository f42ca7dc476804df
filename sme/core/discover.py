"""The one discovery by tags: rebuild a lost deploy state from what sme made for an experiment.

Every resource sme makes for experiment X has a name derived from X (``sme.core.names``) and, where the
service has tags, the tag sme:experiment=X. SageMaker resources are listed by name and their tags checked
with SageMaker's own ListTags (moto 5.2's tagging API returns an endpoint config's ARN as the text of a
Python tuple, so discovery must not depend on that API's ARNs). Scaling targets
carry no tags: they are taken only when the endpoint itself is sme's (already in the state), since deleting
an endpoint orphans its targets anyway.
"""

from __future__ import annotations

from typing import Any, Callable

from sme.aws import AwsError, aws_call, if_found, is_not_found
from sme.core import names
from sme.core.models import EXPERIMENT_TAG
from sme.state import DeployState

Found = list[str]


def discover(aws: Any, experiment: str, state: DeployState) -> Found:
    """Add tagged resources missing from ``state``; return 'kind name' for each one found."""
    found: Found = []
    for part in (_sagemaker, _role, _artifacts, _scaling, _alarms, _gateway):
        found += _tolerant(lambda: part(aws, experiment, state))
    return found


def _sagemaker(aws: Any, experiment: str, state: DeployState) -> Found:
    found: Found = []
    sm = aws.client("sagemaker")
    listings = [
        ("endpoint", "list_endpoints", "Endpoints", "EndpointName", "EndpointArn"),
        ("endpoint-config", "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", "EndpointConfigArn"),
        ("model", "list_models", "Models", "ModelName", "ModelArn"),
    ]
    for kind, op, key, name_key, arn_key in listings:
        with aws_call(f"sagemaker:{op}", experiment):
            pages = sm.get_paginator(op).paginate(NameContains=experiment)
            items = [item for page in pages for item in page.get(key, [])]
        for item in items:
            if state.find(kind, item[name_key]):
                continue
            with aws_call("sagemaker:ListTags", item[name_key]):
                tags = sm.list_tags(ResourceArn=item[arn_key]).get("Tags", [])
            if {"Key": EXPERIMENT_TAG, "Value": experiment} in tags:
                _add(state, found, kind, item[name_key], item[arn_key])
    return found


def _role(aws: Any, experiment: str, state: DeployState) -> Found:
    found: Found = []
    name = names.role_name(experiment)
    if _tagged_role(aws, name, experiment):
        _add(state, found, "role", name)
    return found


def _tagged_role(aws: Any, name: str, experiment: str) -> bool:
    iam = aws.client("iam")
    reply = if_found("iam:ListRoleTags", name, lambda: iam.list_role_tags(RoleName=name))
    return reply is not None and {"Key": EXPERIMENT_TAG, "Value": experiment} in reply.get("Tags", [])


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
    """Artifacts under ``<experiment>/model-`` in sme's default bucket and in buckets sme made for this
    experiment (``model.bucket``; tagged sme:experiment, found with the Resource Groups Tagging API)."""
    found: Found = []
    s3 = aws.client("s3")
    for bucket in [names.default_bucket(aws.account_id, aws.region or "")] + _tagged_buckets(aws, experiment):
        if if_found("s3:HeadBucket", bucket, lambda: s3.head_bucket(Bucket=bucket)) is None:
            continue
        with aws_call("s3:ListObjectsV2", f"s3://{bucket}/{experiment}/"):
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{experiment}/model-")
            keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        with aws_call("s3:ListMultipartUploads", f"s3://{bucket}/{experiment}/"):
            uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=f"{experiment}/model-").get("Uploads", [])
        for key in sorted(set(keys) | {u["Key"] for u in uploads}):
            _add(state, found, "artifact", f"s3://{bucket}/{key}", f"arn:aws:s3:::{bucket}/{key}", bucket=bucket,
                 key=key)
        tags = if_found("s3:GetBucketTagging", bucket, lambda: s3.get_bucket_tagging(Bucket=bucket))
        if tags and {"Key": "sme:managed", "Value": "true"} in tags.get("TagSet", []):
            _add(state, found, "bucket", bucket, f"arn:aws:s3:::{bucket}")
    return found


def _tagged_buckets(aws: Any, experiment: str) -> list[str]:
    try:
        with aws_call("tag:GetResources", f"{EXPERIMENT_TAG}={experiment}"):
            pages = aws.client("resourcegroupstaggingapi").get_paginator("get_resources").paginate(
                TagFilters=[{"Key": EXPERIMENT_TAG, "Values": [experiment]}], ResourceTypeFilters=["s3:bucket"])
            return [m["ResourceARN"].rsplit(":", 1)[-1] for page in pages for m in page["ResourceTagMappingList"]]
    except AwsError:
        return []  # no permission for the tagging API: the default bucket is still searched


def _scaling(aws: Any, experiment: str, state: DeployState) -> Found:
    found: Found = []
    if not state.find("endpoint", experiment):
        return found
    aas = aws.client("application-autoscaling")
    prefix = names.scaling_resource_id(experiment, "")
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
    prefix = names.alarm_prefix(experiment)
    with aws_call("cloudwatch:DescribeAlarms", f"{prefix}*"):
        alarms = cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    for alarm in alarms:
        with aws_call("cloudwatch:ListTagsForResource", alarm["AlarmName"]):
            tags = cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags", [])
        if {"Key": EXPERIMENT_TAG, "Value": experiment} in tags:
            _add(state, found, "alarm", alarm["AlarmName"], alarm["AlarmArn"])
    return found


def _gateway(aws: Any, experiment: str, state: DeployState) -> Found:
    found: Found = []
    name = names.gateway_api_name(experiment)
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
    function = names.gateway_function_name(experiment)
    lam = aws.client("lambda")
    reply = if_found("lambda:GetFunction", function, lambda: lam.get_function(FunctionName=function))
    if reply and (reply.get("Tags") or {}).get(EXPERIMENT_TAG) == experiment:
        _add(state, found, "lambda", function, reply["Configuration"]["FunctionArn"])
        _add(state, found, "log-group", names.gateway_log_group(experiment))
    if _tagged_role(aws, function, experiment):
        _add(state, found, "gateway-role", function)
    return found
