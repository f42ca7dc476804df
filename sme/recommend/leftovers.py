"""`sme teardown --sweep ID`: remove what a sweep left, found from AWS's tags, not from the sweep's folder.

Every candidate is its own experiment (``<base>-<sweep id>-<n>``) whose resources carry ``sme-sweep=<id>``
and ``sme:experiment=<candidate>``. The sweep's candidates are found by listing SageMaker's models, endpoint
configs and endpoints, and sme's IAM roles, whose names hold ``-<id>-``, and keeping those SageMaker's (or
IAM's) own tags mark as the sweep's (not the Resource Groups Tagging API: moto garbles its ARNs). Each
candidate found is then torn down as `sme teardown --name <candidate>` would, which finds the rest of it
(artifacts, scaling, alarms) by its experiment tag. So it works after DIR/sweep.json and the local deploy
state are lost; a sweep that deployed nothing yet leaves nothing to find.
"""

from __future__ import annotations

import re
from typing import Any

from sme.errors import ExitStatus, UserError
from sme.recommend.config import SWEEP_TAG

SWEEP_ID = re.compile(r"^[0-9a-f]{6}$")
LISTINGS = (("list_endpoints", "Endpoints", "EndpointName", "EndpointArn"),
            ("list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", "EndpointConfigArn"),
            ("list_models", "Models", "ModelName", "ModelArn"))


def sweep_experiments(aws: Any, sweep_id: str) -> list[str]:
    """The candidate experiments that still have something tagged ``sme-sweep=<sweep_id>`` in AWS."""
    from sme.aws import aws_call

    found: set[str] = set()
    sm = aws.client("sagemaker")
    for op, key, name_key, arn_key in LISTINGS:
        with aws_call(f"sagemaker:{op}", f"the sweep {sweep_id}"):
            items = [i for page in sm.get_paginator(op).paginate(NameContains=f"-{sweep_id}-") for i in page[key]]
        for item in items:
            with aws_call("sagemaker:ListTags", item[name_key]):
                found |= _experiment(sm.list_tags(ResourceArn=item[arn_key]).get("Tags", []), sweep_id)
    iam = aws.client("iam")
    with aws_call("iam:ListRoles", f"the sweep {sweep_id}"):
        roles = [r["RoleName"] for page in iam.get_paginator("list_roles").paginate() for r in page["Roles"]
                 if f"-{sweep_id}-" in r["RoleName"]]
    for role in roles:
        with aws_call("iam:ListRoleTags", role):
            found |= _experiment(iam.list_role_tags(RoleName=role).get("Tags", []), sweep_id)
    return sorted(found)


def _experiment(tags: list[dict[str, str]], sweep_id: str) -> set[str]:
    from sme.core.models import EXPERIMENT_TAG

    values = {t["Key"]: t["Value"] for t in tags}
    return {values[EXPERIMENT_TAG]} if values.get(SWEEP_TAG) == sweep_id and values.get(EXPERIMENT_TAG) else set()


def teardown_sweep(sweep_id: str, region: str | None, profile: str | None, env: Any, dry_run: bool,
                   lock_timeout: float) -> int:
    from sme.deploy import aws_for, teardown

    if not SWEEP_ID.fullmatch(sweep_id):
        raise UserError(f"--sweep {sweep_id!r} is not a sweep id",
                        hint="the six hex digits `sme recommend` printed (`sweep 3f9a0c: ...`), also in DIR/sweep.json")
    names = sweep_experiments(aws_for(region, profile), sweep_id)
    if not names:
        env.info(f"nothing tagged {SWEEP_TAG}={sweep_id} is left")
        return int(ExitStatus.OK)
    env.info(f"sweep {sweep_id}: {len(names)} candidate(s) left in AWS: {', '.join(names)}")
    for name in names:
        teardown(name, region, profile, env, dry_run, lock_timeout)
    return int(ExitStatus.OK)
