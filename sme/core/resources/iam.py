"""IAM: the least-privilege execution role made for `role: create`."""

from __future__ import annotations

from typing import Any, Callable

from sme.aws import AwsError, aws_call, if_found
from sme.core import steps
from sme.core.executor import Deleter, ExecContext


ROLE_PROPAGATION_TRIES = 8


def while_role_propagates(ctx: ExecContext, operation: str, resource: str, service: str, call: Callable[[], Any]) -> Any:
    """Make a call that names a role; while AWS cannot assume that role yet (IAM is eventually consistent:
    a role made seconds ago is not yet visible to SageMaker or Lambda), back off and retry."""
    for attempt in range(ROLE_PROPAGATION_TRIES):
        try:
            with aws_call(operation, resource):
                return call()
        except AwsError as exc:
            if "assume" not in exc.message.lower() or attempt == ROLE_PROPAGATION_TRIES - 1:
                raise
            ctx.env.info(f"  role not yet assumable by {service}; retrying in {2 ** attempt}s")
            ctx.env.sleep(2 ** attempt)
    raise AssertionError("unreachable")


def create_role(ctx: ExecContext, step: steps.CreateRole) -> None:
    role = step.role
    iam = ctx.aws.client("iam")
    with aws_call("iam:CreateRole", role.name):
        reply = iam.create_role(RoleName=role.name, Path=role.path, AssumeRolePolicyDocument=role.trust_policy,
                                Description=f"SageMaker execution role made by sme for {ctx.state.experiment}",
                                Tags=ctx.tags)
    ctx.record("role", role.name, reply["Role"]["Arn"])


def put_role_policy(ctx: ExecContext, step: steps.PutRolePolicy) -> None:
    role = step.role
    with aws_call("iam:PutRolePolicy", f"{role.name}/{role.policy_name}"):
        ctx.aws.client("iam").put_role_policy(RoleName=role.name, PolicyName=role.policy_name,
                                              PolicyDocument=role.policy)


def delete_role(ctx: ExecContext, name: str, extra: dict[str, Any]) -> bool:
    """Its inline policies, its attached policies, then the role."""
    iam = ctx.aws.client("iam")
    listing = if_found("iam:ListRolePolicies", name, lambda: iam.list_role_policies(RoleName=name))
    if listing is None:
        return False
    for policy in listing["PolicyNames"]:
        with aws_call("iam:DeleteRolePolicy", f"{name}/{policy}"):
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
    with aws_call("iam:ListAttachedRolePolicies", name):
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    for policy in attached:
        with aws_call("iam:DetachRolePolicy", name):
            iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    with aws_call("iam:DeleteRole", name):
        iam.delete_role(RoleName=name)
    return True


HANDLERS = {steps.CreateRole: create_role, steps.PutRolePolicy: put_role_policy}
DELETERS = {"role": Deleter(90, delete_role)}
