"""Options shared by several commands (click only: this module is imported by `sme --help`)."""

from __future__ import annotations

import click


def parse_duration_option(ctx: click.Context, param: click.Parameter, value: object) -> float | None:
    if value is None:
        return None
    from sme.units import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def aws_options(fn):  # type: ignore[no-untyped-def]
    fn = click.option("--profile", help="AWS profile (default: the file's `profile`, then AWS_PROFILE).")(fn)
    fn = click.option("--region", help="AWS region (default: the file's `region`, then AWS_REGION).")(fn)
    return fn
