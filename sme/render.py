"""Pure formatting: plans, preflight checks, status and removals as rich tables. Printing happens elsewhere.

Every cell is plain text (``rich.text.Text``), never markup: cells carry AWS's own messages and names from
the user's files, and a ``[...]`` in them (``s3:///key`` in an AWS error, say) would be read as a style tag.
"""

from __future__ import annotations

from typing import Any, Iterable

from sme.core.models import EndpointView
from sme.core.steps import Plan


def plan_table(plan: Plan, title: str = "plan") -> Any:
    from rich.table import Table

    table = Table(title=title if not plan.empty else f"{title}: no changes", title_justify="left")
    for col in ("action", "resource", "name", "why"):
        table.add_column(col, overflow="fold")
    for step in plan.steps:
        table.add_row(*_plain(step.action, step.kind, step.name, step.why))
    return table


def status_table(view: EndpointView | None, config: dict[str, Any] | None, outputs: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    if view is None:
        table.add_row(*_plain("endpoint", "not deployed"))
        return table
    table.add_row(*_plain("endpoint", view.name))
    table.add_row(*_plain("status", view.status + (f"  ({view.failure_reason})" if view.failure_reason else "")))
    table.add_row(*_plain("config", view.config_name))
    table.add_row(*_plain("kind", endpoint_kind(config)))
    for key, value in outputs.items():
        table.add_row(*_plain(key.replace("_", " "), value))
    types = {v["VariantName"]: _capacity(v) for v in (config or {}).get("ProductionVariants", [])}
    variants = Table(title="variants", title_justify="left")
    for col in ("variant", "capacity", "current", "desired", "weight"):
        variants.add_column(col)
    for v in view.variants:
        variants.add_row(*_plain(v.name, types.get(v.name, ""), _n(v.current_instances), _n(v.desired_instances),
                                 _n(v.current_weight)))
    from rich.console import Group

    return Group(table, variants)


def status_json(view: EndpointView | None, config: dict[str, Any] | None, outputs: dict[str, Any]) -> dict:
    if view is None:
        return {"endpoint": None, "status": "NotDeployed"}
    raw = {v["VariantName"]: v for v in (config or {}).get("ProductionVariants", [])}
    types = {name: v.get("InstanceType") for name, v in raw.items()}
    return {
        "endpoint": view.name, "status": view.status, "config": view.config_name, "kind": endpoint_kind(config),
        "async_output": ((config or {}).get("AsyncInferenceConfig") or {}).get("OutputConfig", {}).get("S3OutputPath"),
        "failure_reason": view.failure_reason, "outputs": outputs,
        "variants": [_variant_json(v, raw.get(v.name) or {}, types.get(v.name)) for v in view.variants],
    }


def checks_table(checks: Iterable[Any]) -> Any:
    """Preflight's checks: pass / WARN / FAIL, the numbers behind each, and the fix."""
    from rich.table import Table

    out = Table(title="preflight", title_justify="left")
    for col in ("check", "result", "numbers", "fix"):
        out.add_column(col, overflow="fold")
    for c in checks:
        out.add_row(*_plain(c.name, c.outcome.upper() if c.outcome != "pass" else "pass", c.numbers, c.fix))
    return out


def removals_table(removals: Iterable[Any]) -> Any:
    from rich.table import Table

    table = Table(title="teardown", title_justify="left")
    for col in ("resource", "name", "result"):
        table.add_column(col, overflow="fold")
    for r in removals:
        table.add_row(*_plain(r.kind, r.name, r.outcome))
    return table


def _plain(*cells: Any) -> tuple[Any, ...]:
    from rich.text import Text

    return tuple(Text(str(c)) for c in cells)


def _variant_json(view: Any, raw: dict[str, Any], instance_type: str | None) -> dict[str, Any]:
    out = {"name": view.name, "instance_type": instance_type, "current_instances": view.current_instances,
           "desired_instances": view.desired_instances, "weight": view.current_weight}
    if raw.get("ServerlessConfig"):
        out["serverless"] = raw["ServerlessConfig"]
    return out


def endpoint_kind(config: dict[str, Any] | None) -> str:
    """real-time, serverless or asynchronous, as the endpoint config says."""
    config = config or {}
    if config.get("AsyncInferenceConfig"):
        return f"asynchronous (results under {config['AsyncInferenceConfig']['OutputConfig']['S3OutputPath']})"
    if any(v.get("ServerlessConfig") for v in config.get("ProductionVariants", [])):
        return "serverless"
    return "real-time"


def _capacity(variant: dict[str, Any]) -> str:
    spec = variant.get("ServerlessConfig")
    if not spec:
        return variant.get("InstanceType", "")
    provisioned = f", {spec['ProvisionedConcurrency']} provisioned" if spec.get("ProvisionedConcurrency") else ""
    return f"serverless {spec['MemorySizeInMB']} MB, up to {spec['MaxConcurrency']} at once{provisioned}"


def _n(value: Any) -> str:
    return "-" if value is None else str(value)
