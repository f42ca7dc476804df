"""EC2: the network interfaces SageMaker places in a customer's VPC for an endpoint's instances.

AWS behaviour reproduced (DescribeNetworkInterfaces): an interface that a service creates and manages for
its own instances is ``RequesterManaged: true`` and, while the instance runs, ``Status: in-use`` (moto
makes every interface ``available`` and not requester-managed). The twin's fleet calls ``service_managed``
on each interface it creates for an endpoint instance.
"""

from __future__ import annotations

from typing import Any

REQUESTER = "sagemaker.amazonaws.com"


def service_managed(eni: Any, requester: str = REQUESTER) -> Any:
    """Mark a moto network interface as one a service created and holds for a running instance."""
    eni.requester_managed = True
    eni.requester_id = requester
    eni.status = "in-use"
    return eni
