import click

from sme.commands.options import aws_options, parse_duration_option


@click.command("deploy")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
              help="Experiment file (YAML). Flags override its fields.")
@click.option("--name", help="Experiment name; also the endpoint's name.")
@aws_options
@click.option("--image", help="ECR image URI, or framework:version such as xgboost:1.7-1.")
@click.option("--model-data", help="s3:// URI or local model.tar.gz (uploaded under a content hash).")
@click.option("--role", help="Execution role ARN, or `create` for a least-privilege role.")
@click.option("--instance-type", help="Instance type of the (single) variant, e.g. ml.m5.large.")
@click.option("--count", type=int, help="Instance count of the (single) variant.")
@click.option("--subnet", "subnets", multiple=True, help="VPC subnet id (repeat for each subnet).")
@click.option("--security-group", "security_groups", multiple=True, help="Security group id (repeatable).")
@click.option("--env", "environment", multiple=True, metavar="KEY=VALUE", help="Container environment (repeatable).")
@click.option("--min", "min_instances", type=click.IntRange(1), help="Autoscaling: fewest instances per variant.")
@click.option("--max", "max_instances", type=click.IntRange(1), help="Autoscaling: most instances per variant.")
@click.option("--target", type=click.FloatRange(0, min_open=True),
              help="Autoscaling: target value of the metric per instance (default 70 invocations/min).")
@click.option("--skip-preflight", is_flag=True, help="Deploy without the quota, network and IAM checks.")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--timeout", default="30m", callback=parse_duration_option, show_default=True,
              help="How long to wait for InService.")
@click.option("--poll-interval", default="15s", callback=parse_duration_option, show_default=True,
              help="How often to check the endpoint while waiting.")
def command(config_path, name, region, profile, image, model_data, role, instance_type, count, subnets,
            security_groups, environment, min_instances, max_instances, target, skip_preflight, dry_run, timeout,
            poll_interval):
    """Create or update an endpoint: plan, then apply (waits for InService)."""
    from sme.config import Overrides, load_experiment
    from sme.console import ENV
    from sme.deploy import DeployOptions, deploy

    flags = Overrides(name=name, region=region, profile=profile, image=image, model_data=model_data, role=role,
                      instance_type=instance_type, count=count, subnets=subnets, security_groups=security_groups,
                      environment=environment)
    scaling = {k: v for k, v in (("min", min_instances), ("max", max_instances), ("target", target)) if v is not None}
    if scaling:
        flags.extra["autoscaling"] = scaling
    exp = load_experiment(config_path, flags)
    return deploy(exp, DeployOptions(dry_run=dry_run, timeout=timeout, poll=poll_interval,
                                     skip_preflight=skip_preflight), ENV)
