"""Serverless Inference rates: the AWS Pricing API when it answers, else the dated table (which says its date).

The Price List API files serverless products under product family "ML Serverless" (found in infracost's
SageMaker resource), each a price per second of one memory size, with a region prefix on the usage type:

- ``USE1-ServerlessInf:Mem-<N>GB``: on-demand inference duration at N GB (``Mem-3GB`` is $0.00006 a second in
  us-east-1: $0.00002 per GB-second, the table's rate);
- ``USE1-ProvisionedConcurrency:Usage-<N>GB``: provisioned concurrency kept, per second, at N GB;
- ``USE1-ProvisionedConcurrency:Mem-<N>GB``: inference served by provisioned concurrency, per second at N GB.

sme reads each as a price per second at its memory size and divides by N for a per-GB-second rate (the unit
``kind_cost`` bills in). Data processed is its own product (operation ``Invoke-Endpoint``, usage type
``<REGION>-Data-Bytes-In`` / ``-Data-Bytes-Out``, per GB). A rate the API does not give comes from the table,
and the source says which did.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from sme.report.kind_cost import ServerlessRates, table_rates
from sme.report.pricing import API, SERVICE, _default_client, load_table, on_demand_usd, short_error

FAMILY = "ML Serverless"
MAX_PAGES = 5
_PER_SECOND = {"ServerlessInf:Mem": "compute_per_gb_second",
               "ProvisionedConcurrency:Usage": "provisioned_per_gb_second",
               "ProvisionedConcurrency:Mem": "provisioned_compute_per_gb_second"}
_USAGE = re.compile(r"(?:[A-Z0-9]+-)?(ServerlessInf:Mem|ProvisionedConcurrency:Usage|ProvisionedConcurrency:Mem)"
                    r"-(\d+)GB")
_DATA = re.compile(r"(?:[A-Z0-9]+-)?Data-Bytes-(In|Out)")


def serverless_rate(product: dict[str, Any], memory_mb: int) -> tuple[str, float] | None:
    """(``ServerlessRates`` field, USD per GB-second) of a serverless product at ``memory_mb``, else None."""
    usage = str(((product.get("product") or {}).get("attributes") or {}).get("usagetype") or "")
    found = _USAGE.fullmatch(usage)
    if not found or int(found.group(2)) * 1024 != memory_mb:
        return None
    usd = on_demand_usd(product)
    return None if usd is None else (_PER_SECOND[found.group(1)], usd / int(found.group(2)))


def data_rate(product: dict[str, Any]) -> tuple[str, float] | None:
    """(``data_in_per_gb`` or ``data_out_per_gb``, USD per GB) of a data-processed product, else None."""
    usage = str(((product.get("product") or {}).get("attributes") or {}).get("usagetype") or "")
    found = _DATA.fullmatch(usage)
    usd = on_demand_usd(product) if found else None
    return None if usd is None else (f"data_{found.group(1).lower()}_per_gb", usd)  # type: ignore[union-attr]


def api_rates(client: Any, region: str, memory_mb: int) -> dict[str, float]:
    """What the Pricing API says for a serverless variant of ``memory_mb`` in ``region`` (two queries)."""
    found: dict[str, float] = {}
    for filters, read in (([("productFamily", FAMILY)], lambda p: serverless_rate(p, memory_mb)),
                          ([("operation", "Invoke-Endpoint")], data_rate)):
        terms = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]
        terms += [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters]
        kwargs: dict[str, Any] = {"ServiceCode": SERVICE, "Filters": terms, "MaxResults": 100}
        for _ in range(MAX_PAGES):
            reply = client.get_products(**kwargs)
            for item in reply.get("PriceList") or []:
                rate = read(json.loads(item) if isinstance(item, str) else item)
                if rate is not None:
                    found.setdefault(*rate)
            if not reply.get("NextToken"):
                break
            kwargs["NextToken"] = reply["NextToken"]
    return found


@dataclass
class ServerlessPricer:
    """Looks serverless rates up once per (region, memory); one failed API call means the table from then on."""

    use_api: bool = True
    client_factory: Callable[[], Any] = _default_client
    api_error: str | None = None
    _cache: dict[tuple[str, int], ServerlessRates] = field(default_factory=dict)

    def rates(self, region: str, memory_mb: int) -> ServerlessRates:
        key = (region, memory_mb)
        if key not in self._cache:
            self._cache[key] = self._lookup(region, memory_mb)
        return self._cache[key]

    def _lookup(self, region: str, memory_mb: int) -> ServerlessRates:
        table = table_rates(load_table(), region)
        if not self.use_api or self.api_error is not None:
            return table
        try:
            found = api_rates(self.client_factory(), region, memory_mb)
        except Exception as exc:  # noqa: BLE001 - any failure means "use the table", and the source says why
            self.api_error = short_error(exc)
            return replace(table, source=f"{table.source}; the AWS Pricing API did not answer ({self.api_error})")
        if not found:
            return replace(table, source=f"{table.source}; the AWS Pricing API had no serverless prices for "
                                         f"{region} at {memory_mb} MB")
        # a rate the API did not give but the table has: say it came from the table (one it has neither of
        # stays None, and the cost says it is unknown)
        from_table = [k for k in (*_PER_SECOND.values(), "data_in_per_gb", "data_out_per_gb")
                      if k not in found and getattr(table, k) is not None]
        source = API if not from_table else f"{API}; {', '.join(from_table)} from {table.source}"
        return replace(table, **found, source=source)
