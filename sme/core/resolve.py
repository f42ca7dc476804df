"""Experiment (what the user wrote) -> Desired (names, URIs and ARNs, fully resolved). Reads only.

Resolution reads the caller's account (STS), hashes a local artifact and resolves a short image name;
it never changes AWS.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sme.config import Experiment
from sme.core import names
from sme.core.images import resolve_image
from sme.core.models import (EXPERIMENT_TAG, Desired, DesiredArtifact, DesiredConfig, DesiredModel, DesiredRole,
                             DesiredVariant)
from sme.errors import ConfigError


def resolve(exp: Experiment, region: str, account: str) -> Desired:
    image = resolve_image(exp.model.image, region, exp.variants[0].instance_type, exp.source)
    artifact = _artifact(exp, region, account)
    model_data_url = artifact.url if artifact else exp.model.model_data
    role = _role(exp, account, region, image, model_data_url) if exp.model.role == "create" else None
    role_arn = role.arn if role else exp.model.role
    model_spec = DesiredModel(
        name="", image=image, model_data_url=model_data_url, role_arn=role_arn,
        environment=exp.model.environment, subnets=tuple(sorted(exp.network.subnets)),
        security_groups=tuple(sorted(exp.network.security_groups)),
        network_isolation=exp.network.network_isolation,
    )
    model = DesiredModel(**{**model_spec.__dict__, "name": names.model_name(exp.name, model_spec)})
    variants = tuple(DesiredVariant(v.name, v.instance_type, v.count, v.weight) for v in exp.variants)
    config_spec = DesiredConfig(name="", model_name=model.name, variants=variants)
    config = DesiredConfig(names.config_name(exp.name, config_spec), model.name, variants)
    tags = ((EXPERIMENT_TAG, exp.name),) + exp.tags
    return Desired(experiment=exp.name, region=region, endpoint_name=exp.name, model=model, config=config,
                   artifact=artifact, role=role, tags=tags, extra=dict(exp.extra))


def _artifact(exp: Experiment, region: str, account: str) -> DesiredArtifact | None:
    data = exp.model.model_data
    if data.startswith("s3://"):
        if len(data) <= 5 or "/" not in data[5:]:
            raise ConfigError(exp.source, "model.model_data", f"{data!r} is not s3://bucket/key",
                              hint="give the full object URI, e.g. s3://my-bucket/models/model.tar.gz")
        return None
    path = Path(data).expanduser()
    if not path.is_file():
        raise ConfigError(exp.source, "model.model_data", f"{data!r} is not a file or an s3:// URI",
                          hint="give the path of a model.tar.gz or an s3://bucket/key URI")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    bucket = exp.model.bucket or names.default_bucket(account, region)
    return DesiredArtifact(str(path.resolve()), bucket, names.artifact_key(exp.name, sha), sha, path.stat().st_size)


def _role(exp: Experiment, account: str, region: str, image: str, model_data_url: str) -> DesiredRole:
    name = names.role_name(exp.name)
    partition = "aws-cn" if region.startswith("cn-") else "aws"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account}}}]}
    return DesiredRole(name=name, arn=f"arn:{partition}:iam::{account}:role/sme/{name}", path="/sme/",
                       trust_policy=json.dumps(trust, sort_keys=True), policy_name="sme-least-privilege",
                       policy=least_privilege_policy(exp, account, region, partition, image, model_data_url))


def least_privilege_policy(exp: Experiment, account: str, region: str, partition: str, image: str,
                           model_data_url: str) -> str:
    """What a SageMaker endpoint's execution role needs for this model, and nothing more."""
    bucket, _, key = model_data_url[5:].partition("/")
    image_account, _, rest = image.partition(".dkr.ecr.")
    image_region = rest.split(".", 1)[0]
    repo = image.split("/", 1)[1].split("@")[0].split(":")[0]
    ec2 = f"arn:{partition}:ec2:{region}:{account}"
    statements = [
        {"Sid": "ReadModelArtifact", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"arn:{partition}:s3:::{bucket}/{key}"]},
        {"Sid": "PullImage", "Effect": "Allow",
         "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
         "Resource": [f"arn:{partition}:ecr:{image_region}:{image_account}:repository/{repo}"]},
        {"Sid": "EcrAuth", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": ["*"]},
        {"Sid": "Logs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
         "Resource": [f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{exp.name}",
                      f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{exp.name}:*"]},
        {"Sid": "Metrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": ["*"],
         "Condition": {"StringLike": {"cloudwatch:namespace": ["AWS/SageMaker", "/aws/sagemaker/*"]}}},
    ]
    if exp.network.subnets:
        statements += [
            {"Sid": "DescribeNetwork", "Effect": "Allow",
             "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
                        "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"], "Resource": ["*"]},
            {"Sid": "EndpointNetworkInterfaces", "Effect": "Allow",
             "Action": ["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission"],
             "Resource": [f"{ec2}:network-interface/*"]
             + [f"{ec2}:subnet/{s}" for s in sorted(exp.network.subnets)]
             + [f"{ec2}:security-group/{g}" for g in sorted(exp.network.security_groups)]},
        ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)
