"""How each base resource kind is deleted, and in which order (endpoint before its config and model)."""

from __future__ import annotations

from typing import Any

from sme.core import ops_iam, ops_s3, ops_sagemaker
from sme.core.sweeper import Kind, register
from sme.core.waiter import wait_for_endpoint_gone
from sme.state import ResourceRecord


def _delete_endpoint(aws: Any, rec: ResourceRecord) -> bool:
    deleted = ops_sagemaker.delete_endpoint(aws, rec.name)
    if deleted:
        # the role and network must outlive the endpoint's own cleanup
        from sme.console import ENV

        wait_for_endpoint_gone(aws, ENV, rec.name, timeout=ENDPOINT_DELETE_TIMEOUT, poll=ENDPOINT_DELETE_POLL)
    return deleted


ENDPOINT_DELETE_TIMEOUT = 1800.0
ENDPOINT_DELETE_POLL = 10.0

register(Kind("endpoint", 40, _delete_endpoint))
register(Kind("endpoint-config", 50, lambda aws, r: ops_sagemaker.delete_endpoint_config(aws, r.name)))
register(Kind("model", 60, lambda aws, r: ops_sagemaker.delete_model(aws, r.name)))
register(Kind("artifact", 70, lambda aws, r: ops_s3.delete_artifact(aws, r.extra["bucket"], r.extra["key"])))
register(Kind("bucket", 80, lambda aws, r: ops_s3.delete_bucket_if_empty(aws, r.name)))
register(Kind("role", 90, lambda aws, r: ops_iam.delete_role(aws, r.name)))
