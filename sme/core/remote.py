"""RemoteState: what AWS has now. Only describe/list/head calls; never a mutating one."""

from __future__ import annotations

from typing import Any

from sme.aws import AwsContext, aws_call, is_not_found
from sme.core.models import Desired, EndpointView, Observed, VariantView


class RemoteState:
    def __init__(self, aws: AwsContext):
        self.aws = aws

    def observe(self, desired: Desired) -> Observed:
        art, role = desired.artifact, desired.role
        return Observed(
            bucket_exists=self.bucket_exists(art.bucket) if art else False,
            artifact_exists=self.object_exists(art.bucket, art.key) if art else False,
            role_exists=self.role_exists(role.name) if role else False,
            role_policy=self.role_policy(role.name, role.policy_name) if role else None,
            model_exists=self.model_exists(desired.model.name),
            config_exists=self.config_exists(desired.config.name),
            endpoint=self.endpoint(desired.endpoint_name),
        )

    # -- S3 --------------------------------------------------------------------------------------
    def bucket_exists(self, bucket: str) -> bool:
        return self._exists("s3", "HeadBucket", bucket, lambda c: c.head_bucket(Bucket=bucket))

    def object_exists(self, bucket: str, key: str) -> bool:
        return self._exists("s3", "HeadObject", f"s3://{bucket}/{key}", lambda c: c.head_object(Bucket=bucket, Key=key))

    # -- IAM -------------------------------------------------------------------------------------
    def role_exists(self, name: str) -> bool:
        return self._exists("iam", "GetRole", name, lambda c: c.get_role(RoleName=name))

    def role_policy(self, role: str, policy: str) -> str | None:
        import json

        client = self.aws.client("iam")
        try:
            with aws_call("iam:GetRolePolicy", f"{role}/{policy}"):
                doc = client.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        except Exception as exc:  # noqa: BLE001
            if is_not_found(exc.__cause__ or exc):
                return None
            raise
        if isinstance(doc, str):
            from urllib.parse import unquote

            doc = json.loads(unquote(doc))
        return json.dumps(doc, sort_keys=True)

    # -- SageMaker -------------------------------------------------------------------------------
    def model_exists(self, name: str) -> bool:
        return self._exists("sagemaker", "DescribeModel", name, lambda c: c.describe_model(ModelName=name))

    def config_exists(self, name: str) -> bool:
        return self._exists("sagemaker", "DescribeEndpointConfig", name,
                            lambda c: c.describe_endpoint_config(EndpointConfigName=name))

    def endpoint(self, name: str) -> EndpointView | None:
        raw = self.describe_endpoint(name)
        return endpoint_view(raw) if raw else None

    def describe_endpoint(self, name: str) -> dict[str, Any] | None:
        return self._describe("DescribeEndpoint", name, lambda c: c.describe_endpoint(EndpointName=name))

    def describe_endpoint_config(self, name: str) -> dict[str, Any] | None:
        return self._describe("DescribeEndpointConfig", name,
                              lambda c: c.describe_endpoint_config(EndpointConfigName=name))

    def _describe(self, op: str, name: str, call: Any) -> dict[str, Any] | None:
        """A SageMaker describe; None when the resource does not exist."""
        try:
            with aws_call(f"sagemaker:{op}", name):
                return call(self.aws.client("sagemaker"))
        except Exception as exc:  # noqa: BLE001
            if is_not_found(exc.__cause__ or exc):
                return None
            raise

    def _exists(self, service: str, op: str, resource: str, call: Any) -> bool:
        client = self.aws.client(service)
        try:
            with aws_call(f"{service}:{op}", resource):
                call(client)
            return True
        except Exception as exc:  # noqa: BLE001
            if is_not_found(exc.__cause__ or exc):
                return False
            raise


def endpoint_view(raw: dict[str, Any]) -> EndpointView:
    variants = tuple(
        VariantView(v["VariantName"], v.get("CurrentInstanceCount"), v.get("DesiredInstanceCount"),
                    v.get("CurrentWeight"))
        for v in raw.get("ProductionVariants", [])
    )
    return EndpointView(raw["EndpointName"], raw["EndpointStatus"], raw.get("EndpointConfigName", ""),
                        raw.get("FailureReason"), variants, raw.get("EndpointArn", ""))
