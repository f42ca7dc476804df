"""SageMaker quotas for moto's Service Quotas, which knows only the `vpc` service.

``install()`` patches moto's ServiceQuotasBackend (and adds ListServiceQuotas) in this process. Every
"<instance type> for endpoint usage" quota is ``DEFAULT`` unless a test sets it::

    QUOTAS[("us-east-1", "ml.m5.large for endpoint usage")] = 0

Tests that change ``QUOTAS`` clear it afterwards (``QUOTAS.clear()``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

DEFAULT = 20.0
QUOTAS: dict[tuple[str, str], float] = {}
INSTANCE_TYPES = tuple(f"ml.{family}.{size}" for family, sizes in (
    ("t2", ("medium", "large", "xlarge", "2xlarge")),
    ("m5", ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge")),
    ("c5", ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge")),
    ("r5", ("large", "xlarge", "2xlarge", "4xlarge")),
    ("g4dn", ("xlarge", "2xlarge", "4xlarge", "12xlarge")),
    ("g5", ("xlarge", "2xlarge", "4xlarge", "12xlarge")),
    ("inf2", ("xlarge", "8xlarge")),
) for size in sizes)
SUFFIX = " for endpoint usage"
# the account-wide serverless quotas, at the defaults AWS's serverless documentation gives (some accounts have
# been seen with 10 and 5): sme recommend's `parallel` check reads them
SERVERLESS_CONCURRENCY = "Maximum total concurrency that can be allocated across all serverless endpoints"
SERVERLESS_ENDPOINTS = "Maximum number of serverless endpoints"
OTHER_DEFAULTS = {SERVERLESS_CONCURRENCY: 200.0, SERVERLESS_ENDPOINTS: 50.0}
_INSTALLED = False


def quota_code(name: str) -> str:
    return "L-" + hashlib.sha1(name.encode()).hexdigest()[:8].upper()


def sagemaker_quotas(region: str, account: str) -> list[dict[str, Any]]:
    names = {t + SUFFIX for t in INSTANCE_TYPES} | set(OTHER_DEFAULTS) | {n for r, n in QUOTAS if r == region}
    return [_quota(region, account, n) for n in sorted(names)]


def _quota(region: str, account: str, name: str) -> dict[str, Any]:
    code = quota_code(name)
    return {"ServiceCode": "sagemaker", "ServiceName": "Amazon SageMaker", "QuotaCode": code, "QuotaName": name,
            "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:sagemaker/{code}",
            "Value": float(QUOTAS.get((region, name), OTHER_DEFAULTS.get(name, DEFAULT))), "Unit": "None", "Adjustable": True,
            "GlobalQuota": False}


def install() -> None:
    """Patch moto's Service Quotas backend and responses (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from moto.servicequotas.exceptions import NoSuchResource
    from moto.servicequotas.models import ServiceQuotasBackend
    from moto.servicequotas.responses import ServiceQuotasResponse

    orig_defaults = ServiceQuotasBackend.list_aws_default_service_quotas
    orig_get = ServiceQuotasBackend.get_service_quota

    def list_aws_default_service_quotas(self: Any, service_code: str) -> list[dict[str, Any]]:
        if service_code == "sagemaker":
            return sagemaker_quotas(self.region_name, self.account_id)
        return orig_defaults(self, service_code)

    def list_service_quotas(self: Any, service_code: str) -> list[dict[str, Any]]:
        return list_aws_default_service_quotas(self, service_code)

    def get_service_quota(self: Any, service_code: str, quota_code: str) -> dict[str, Any]:
        if service_code == "sagemaker":
            for quota in sagemaker_quotas(self.region_name, self.account_id):
                if quota["QuotaCode"] == quota_code:
                    return quota
            raise NoSuchResource
        return orig_get(self, service_code, quota_code)

    def list_service_quotas_response(self: Any) -> str:
        params = json.loads(self.body)
        return json.dumps({"Quotas": self.backend.list_service_quotas(str(params.get("ServiceCode")))})

    ServiceQuotasBackend.list_aws_default_service_quotas = list_aws_default_service_quotas
    ServiceQuotasBackend.list_service_quotas = list_service_quotas
    ServiceQuotasBackend.get_service_quota = get_service_quota
    ServiceQuotasResponse.list_service_quotas = list_service_quotas_response
    _INSTALLED = True
