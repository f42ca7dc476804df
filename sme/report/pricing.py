"""Hourly prices of real-time inference instances: the AWS Pricing API when it answers, else the table.

The table (``sme/data/prices.json``) names its source and date and is approximate; every ``Price``
says where it came from, so the output can tell the user which one it used. One failed API call
switches a ``Pricer`` to the table for the rest of the command (no retry storm without a network).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable

API = "AWS Pricing API"
SERVICE = "AmazonSageMaker"
TABLE_DEFAULT_REGION = "us-east-1"
MAX_PAGES = 5
HOST, ASYNC_INF = "Host", "AsyncInf"  # the Price List's usage types for real-time and asynchronous hosting


@dataclass(frozen=True)
class Price:
    instance_type: str
    region: str
    usd_per_hour: float | None
    source: str
    note: str = ""

    @property
    def known(self) -> bool:
        return self.usd_per_hour is not None


def load_table() -> dict[str, Any]:
    return json.loads(resources.files("sme.data").joinpath("prices.json").read_text())


def table_label(table: dict[str, Any]) -> str:
    approx = "approximate, " if table.get("approximate") else ""
    return f"sme's price table ({approx}{table.get('date')}, from the AWS SageMaker pricing page)"


def _default_client() -> Any:
    import os

    from botocore.config import Config

    from sme import __version__
    from sme.aws import AwsContext

    from sme.aws import is_loopback

    # The Price List API is served from us-east-1 whatever the endpoint's region. Short timeouts: a
    # price is a nicety, and without a network the table answers at once. A local AWS (sme's twin, moto)
    # has no Pricing API: ask once, so that its log shows one refusal, not a retry storm.
    ctx = AwsContext(region="us-east-1", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    retries = 0 if ctx.endpoint_url and is_loopback(ctx.endpoint_url) else 2  # botocore: retries after the first
    config = Config(retries={"mode": "standard", "max_attempts": retries}, user_agent_extra=f"sme/{__version__}",
                    connect_timeout=3, read_timeout=10)
    kwargs: dict[str, Any] = {"config": config}
    if ctx.endpoint_url:
        kwargs["endpoint_url"] = ctx.endpoint_url
    return ctx.session.client("pricing", **kwargs)


@dataclass
class Pricer:
    """Looks prices up once per (instance type, region)."""

    use_api: bool = True
    client_factory: Callable[[], Any] = _default_client
    api_error: str | None = None  # why the API was given up on, for the output
    _cache: dict[tuple[str, str, str], Price] = field(default_factory=dict)
    _table: dict[str, Any] | None = None

    @property
    def table(self) -> dict[str, Any]:
        if self._table is None:
            self._table = load_table()
        return self._table

    def price(self, instance_type: str, region: str, usage: str = HOST) -> Price:
        """``usage``: ``Host`` (real-time hosting) or ``AsyncInf`` (an asynchronous endpoint's instances, which
        the Price List prices under their own usage type, ``<REGION>-AsyncInf:<type>``)."""
        key = (instance_type, region, usage)
        if key not in self._cache:
            found = self._from_api(instance_type, region, usage) if self.use_api and self.api_error is None else None
            self._cache[key] = found or self._from_table(instance_type, region, usage)
        return self._cache[key]

    def _from_api(self, instance_type: str, region: str, usage: str) -> Price | None:
        try:
            client = self.client_factory()
            for field_name in ("instanceName", "instanceType"):
                usd = _query(client, instance_type, region, field_name, usage)
                if usd is not None:
                    return Price(instance_type, region, usd, API)
        except Exception as exc:  # noqa: BLE001 - any failure means "use the table", and the output says why
            self.api_error = short_error(exc)
            return None
        return None

    def _from_table(self, instance_type: str, region: str, usage: str = HOST) -> Price:
        regions = self.table.get("regions") or {}
        label = table_label(self.table)
        why = self._why_table()
        if usage != HOST:  # the table holds real-time hosting rates only
            why += (f"; the table has real-time (Host) rates only: this is the Host rate, the {usage} rate AWS bills "
                    "for an asynchronous endpoint may differ")
        if instance_type in regions.get(region, {}):
            return Price(instance_type, region, float(regions[region][instance_type]), label, why)
        fallback = regions.get(TABLE_DEFAULT_REGION, {})
        if instance_type in fallback:
            return Price(instance_type, region, float(fallback[instance_type]), label,
                         f"{why}; the table has no {region} prices, so this is the {TABLE_DEFAULT_REGION} rate")
        return Price(instance_type, region, None, label,
                     f"{why}; {instance_type} is not in the table either")


    def _why_table(self) -> str:
        if not self.use_api:
            return "--prices table was given"
        if self.api_error is None:
            return "the AWS Pricing API had no price for it"
        import os

        from sme.aws import is_loopback

        local = os.environ.get("AWS_ENDPOINT_URL") or ""
        if local and is_loopback(local):  # sme's local AWS (`sme local start`, `sme demo`) or another stand-in
            return (f"the AWS Pricing API did not answer: AWS_ENDPOINT_URL is a local AWS ({local}), which has "
                    f"no Pricing API ({self.api_error})")
        return f"the AWS Pricing API did not answer ({self.api_error})"


def short_error(exc: Exception) -> str:
    """One short line: an error page in a message (a proxy, a local AWS without Pricing) is cut off."""
    text = (str(exc).splitlines() or [""])[0].split(": <", 1)[0]
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _query(client: Any, instance_type: str, region: str, field_name: str, usage: str = HOST) -> float | None:
    filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
               {"Type": "TERM_MATCH", "Field": field_name, "Value": instance_type}]
    kwargs: dict[str, Any] = {"ServiceCode": SERVICE, "Filters": filters, "MaxResults": 100}
    for _ in range(MAX_PAGES):
        reply = client.get_products(**kwargs)
        for item in reply.get("PriceList") or []:
            usd = hosting_price(json.loads(item) if isinstance(item, str) else item, instance_type, usage)
            if usd is not None:
                return usd
        if not reply.get("NextToken"):
            return None
        kwargs["NextToken"] = reply["NextToken"]
    return None


def hosting_price(product: dict[str, Any], instance_type: str, usage_type: str = "Host") -> float | None:
    """The On-Demand USD/hour of a hosting product: usage type ``<REGION>-Host:<type>`` (real-time) or
    ``<REGION>-AsyncInf:<type>`` (asynchronous inference)."""
    usage = str(((product.get("product") or {}).get("attributes") or {}).get("usagetype") or "")
    if not re.fullmatch(rf"(?:[A-Z0-9]+-)?{re.escape(usage_type)}:{re.escape(instance_type)}", usage):
        return None
    return on_demand_usd(product)


def on_demand_usd(product: dict[str, Any]) -> float | None:
    """The first positive On-Demand USD price of a Price List product document."""
    for term in ((product.get("terms") or {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            try:
                usd = float((dim.get("pricePerUnit") or {}).get("USD"))
            except (TypeError, ValueError):
                continue
            if usd > 0:
                return usd
    return None
