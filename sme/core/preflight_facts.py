"""What preflight needs to know, read from AWS before any change (describe/list/get/head only).

Each reader catches its own failure and records it, so one unreadable fact (say, no permission to read
Service Quotas) becomes a warning about that check, not a crash of the whole preflight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from sme.aws import aws_call, is_not_found
from sme.core.models import Desired


@dataclass(frozen=True)
class SubnetFacts:
    id: str
    az: str
    free: int


@dataclass(frozen=True)
class Facts:
    quotas: dict[str, float] = field(default_factory=dict)  # "<type> for endpoint usage" -> value
    quota_error: str = ""
    used_elsewhere: dict[str, int] = field(default_factory=dict)  # instance type -> instances of other endpoints
    serverless_elsewhere: tuple[int, int] = (0, 0)  # (serverless endpoints, their MaxConcurrency) of other endpoints
    subnets: tuple[SubnetFacts, ...] = ()
    subnet_error: str = ""
    role: str = ""  # ok | missing | untrusted | other-account | create | error:<reason>
    artifact: str = ""  # ok | missing | upload | error:<reason>
    image: str = ""  # ok | missing | sagemaker | other-account | error:<reason>


def gather(aws: Any, desired: Desired) -> Facts:
    quotas, quota_error = read_quotas(aws)
    subnets, subnet_error = read_subnets(aws, desired.model.subnets)
    others = list(_endpoints_elsewhere(aws, desired.endpoint_name))  # read once, for both kinds of quota
    return Facts(quotas=quotas, quota_error=quota_error, used_elsewhere=instances_elsewhere(aws, "", others),
                 serverless_elsewhere=serverless_elsewhere(aws, "", others),
                 subnets=subnets, subnet_error=subnet_error, role=role_fact(aws, desired),
                 artifact=artifact_fact(aws, desired), image=image_fact(aws, desired.model.image))


def read_quotas(aws: Any) -> tuple[dict[str, float], str]:
    try:
        with aws_call("service-quotas:ListServiceQuotas", "sagemaker"):
            pages = aws.client("service-quotas").get_paginator("list_service_quotas").paginate(ServiceCode="sagemaker")
            return {q["QuotaName"]: float(q["Value"]) for page in pages for q in page["Quotas"]}, ""
    except Exception as exc:  # noqa: BLE001 - becomes a warning
        return {}, getattr(exc, "message", str(exc))


def quota_named(quotas: dict[str, float], *words: str) -> str | None:
    """The quota whose name has all ``words`` (AWS words these quotas differently over time and consoles)."""
    return next((n for n in sorted(quotas) if all(w in n.lower() for w in words)), None)


Described = list[tuple[dict[str, Any], dict[str, Any]]]


def instances_elsewhere(aws: Any, endpoint: str, others: Described | None = None) -> dict[str, int]:
    """Instances per type that the account's other endpoints run now (they count against the same quota).
    ``others``: their descriptions, when already read."""
    used: dict[str, int] = {}
    for ep, config in _endpoints_elsewhere(aws, endpoint) if others is None else others:
        types = {v["VariantName"]: v.get("InstanceType") for v in config["ProductionVariants"]}
        for v in ep.get("ProductionVariants", []):
            itype = types.get(v["VariantName"])
            if itype:
                used[itype] = used.get(itype, 0) + int(v.get("CurrentInstanceCount") or 0)
    return used


def serverless_elsewhere(aws: Any, endpoint: str, others: Described | None = None) -> tuple[int, int]:
    """(serverless endpoints, their summed MaxConcurrency) of the account's other endpoints: both count
    against the account's serverless quotas."""
    endpoints = concurrency = 0
    for _, config in _endpoints_elsewhere(aws, endpoint) if others is None else others:
        found = [v["ServerlessConfig"] for v in config["ProductionVariants"] if v.get("ServerlessConfig")]
        endpoints += bool(found)
        concurrency += sum(int(c.get("MaxConcurrency") or 0) for c in found)
    return endpoints, concurrency


def _endpoints_elsewhere(aws: Any, endpoint: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(DescribeEndpoint, DescribeEndpointConfig) of every endpoint of the account but ``endpoint``."""
    sm = aws.client("sagemaker")
    with aws_call("sagemaker:ListEndpoints", "the account's endpoints"):
        names = [e["EndpointName"] for page in sm.get_paginator("list_endpoints").paginate()
                 for e in page["Endpoints"] if e["EndpointName"] != endpoint]
    for name in names:
        try:
            with aws_call("sagemaker:DescribeEndpoint", name):
                ep = sm.describe_endpoint(EndpointName=name)
            with aws_call("sagemaker:DescribeEndpointConfig", ep["EndpointConfigName"]):
                config = sm.describe_endpoint_config(EndpointConfigName=ep["EndpointConfigName"])
        except Exception as exc:  # noqa: BLE001 - deleted meanwhile
            if is_not_found(exc.__cause__ or exc):
                continue
            raise
        yield ep, config


def read_subnets(aws: Any, subnet_ids: tuple[str, ...]) -> tuple[tuple[SubnetFacts, ...], str]:
    if not subnet_ids:
        return (), ""
    try:
        with aws_call("ec2:DescribeSubnets", ", ".join(subnet_ids)):
            found = aws.client("ec2").describe_subnets(SubnetIds=list(subnet_ids))["Subnets"]
    except Exception as exc:  # noqa: BLE001 - e.g. InvalidSubnetID.NotFound: a fail with the reason
        return (), getattr(exc, "message", str(exc))
    return tuple(sorted((SubnetFacts(s["SubnetId"], s["AvailabilityZone"], int(s["AvailableIpAddressCount"]))
                         for s in found), key=lambda s: s.id)), ""


def role_fact(aws: Any, desired: Desired) -> str:
    if desired.role is not None:
        return "create"
    arn = desired.model.role_arn
    if arn.split(":")[4] != aws.account_id:
        return "other-account"
    name = arn.rsplit("/", 1)[-1]
    try:
        with aws_call("iam:GetRole", name):
            doc = aws.client("iam").get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    except Exception as exc:  # noqa: BLE001
        return "missing" if is_not_found(exc.__cause__ or exc) else f"error:{getattr(exc, 'message', exc)}"
    return "ok" if trusts(doc, "sagemaker.amazonaws.com") else "untrusted"


def trusts(doc: Any, service: str) -> bool:
    import json
    from urllib.parse import unquote

    if isinstance(doc, str):
        doc = json.loads(unquote(doc))
    for stmt in doc.get("Statement", []):
        principal = stmt.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        actions = stmt.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if stmt.get("Effect") == "Allow" and service in services and \
                any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            return True
    return False


def artifact_fact(aws: Any, desired: Desired) -> str:
    if desired.artifact is not None:
        return "upload"
    bucket, _, key = desired.model.model_data_url[5:].partition("/")
    try:
        with aws_call("s3:HeadObject", desired.model.model_data_url):
            aws.client("s3").head_object(Bucket=bucket, Key=key)
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return "missing" if is_not_found(exc.__cause__ or exc) else f"error:{getattr(exc, 'message', exc)}"


SAGEMAKER_REPOS = ("sagemaker-", "pytorch-inference", "tensorflow-inference", "huggingface-", "djl-inference",
                   "mxnet-inference", "tei", "tgi-inference", "stabilityai-")


def image_fact(aws: Any, image: str) -> str:
    account, _, rest = image.partition(".dkr.ecr.")
    repo_tag = image.split("/", 1)[1]
    repo, _, tag = repo_tag.partition("@") if "@" in repo_tag else repo_tag.partition(":")
    if account != aws.account_id:
        return "sagemaker" if repo.startswith(SAGEMAKER_REPOS) else "other-account"
    image_id = {"imageDigest": tag} if "@" in repo_tag else {"imageTag": tag or "latest"}
    try:
        with aws_call("ecr:DescribeImages", image):
            aws.client("ecr").describe_images(repositoryName=repo, imageIds=[image_id])
        return "ok"
    except Exception as exc:  # noqa: BLE001
        code = getattr(exc, "code", "")
        if code in ("RepositoryNotFoundException", "ImageNotFoundException") or is_not_found(exc.__cause__ or exc):
            return "missing"
        return f"error:{getattr(exc, 'message', exc)}"
