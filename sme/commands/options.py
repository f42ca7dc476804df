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


def lock_option(fn):  # type: ignore[no-untyped-def]
    return click.option("--lock-timeout", default="0s", callback=parse_duration_option, show_default=True,
                        help="How long to wait while another sme run changes the same experiment.")(fn)


def aws_options(fn):  # type: ignore[no-untyped-def]
    fn = click.option("--profile", help="AWS profile (default: the file's `profile`, then AWS_PROFILE).")(fn)
    fn = click.option("--region", help="AWS region (default: the file's `region`, then AWS_REGION).")(fn)
    return fn


def experiment_options(fn):  # type: ignore[no-untyped-def]
    """The experiment file and the flags that override it (deploy, preflight)."""
    options = [
        click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                     help="Experiment file (YAML). Flags override its fields."),
        click.option("--name", help="Experiment name; also the endpoint's name."),
        aws_options,
        click.option("--image", help="ECR image URI, or framework:version such as xgboost:1.7-1."),
        click.option("--model-data", help="s3:// URI or local model.tar.gz (uploaded under a content hash)."),
        click.option("--role", help="Execution role ARN, or `create` for a least-privilege role."),
        click.option("--instance-type", help="Instance type of the (single) variant, e.g. ml.m5.large."),
        click.option("--count", type=int, help="Instance count of the (single) variant."),
        click.option("--subnet", "subnets", multiple=True, help="VPC subnet id (repeat for each subnet)."),
        click.option("--security-group", "security_groups", multiple=True, help="Security group id (repeatable)."),
        click.option("--env", "environment", multiple=True, metavar="KEY=VALUE",
                     help="Container environment (repeatable)."),
        click.option("--min", "min_instances", type=click.IntRange(1), help="Autoscaling: fewest instances per variant."),
        click.option("--max", "max_instances", type=click.IntRange(1), help="Autoscaling: most instances per variant."),
        click.option("--target", type=click.FloatRange(0, min_open=True),
                     help="Autoscaling: target value of the metric per instance (default 70 invocations/min)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def load_experiment_from_flags(flags: dict):  # type: ignore[no-untyped-def]
    """The validated Experiment from -c and the override flags (call inside a command body)."""
    from sme.config import Overrides, load_experiment

    overrides = Overrides(name=flags["name"], region=flags["region"], profile=flags["profile"], image=flags["image"],
                          model_data=flags["model_data"], role=flags["role"], instance_type=flags["instance_type"],
                          count=flags["count"], subnets=flags["subnets"], security_groups=flags["security_groups"],
                          environment=flags["environment"])
    scaling = {k: flags[f] for k, f in (("min", "min_instances"), ("max", "max_instances"), ("target", "target"))
               if flags[f] is not None}
    overrides.autoscaling = scaling
    return load_experiment(flags["config_path"], overrides)
