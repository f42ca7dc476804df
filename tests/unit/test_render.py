"""sme.render: table cells are text, never rich markup (AWS messages and S3 keys may hold `[...]`)."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from sme.render import checks_table, removals_table


def printed(table) -> str:
    out = io.StringIO()
    Console(file=out, width=300, color_system=None).print(table)
    return out.getvalue()


def test_brackets_in_cells_are_printed_as_written():
    check = SimpleNamespace(name="model artifact", outcome="fail", numbers="s3://b/a[/]b[bold]c does not exist",
                            fix="[red]upload it[/red]")
    text = printed(checks_table([check]))
    assert "s3://b/a[/]b[bold]c does not exist" in text and "[red]upload it[/red]" in text
    gone = SimpleNamespace(kind="bucket", name="b", outcome="failed: [AccessDenied] [/]")
    assert "failed: [AccessDenied] [/]" in printed(removals_table([gone]))
