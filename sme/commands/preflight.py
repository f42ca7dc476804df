import click

from sme.commands.options import aws_options


@click.command("preflight")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
              help="Experiment file (YAML). Flags override its fields.")
@click.option("--name", help="Experiment name; also the endpoint's name.")
@aws_options
@click.option("--image", help="ECR image URI, or framework:version such as xgboost:1.7-1.")
@click.option("--model-data", help="s3:// URI or local model.tar.gz.")
@click.option("--role", help="Execution role ARN, or `create`.")
@click.option("--instance-type", help="Instance type of the (single) variant, e.g. ml.m5.large.")
@click.option("--count", type=int, help="Instance count of the (single) variant.")
@click.option("--subnet", "subnets", multiple=True, help="VPC subnet id (repeat for each subnet).")
@click.option("--security-group", "security_groups", multiple=True, help="Security group id (repeatable).")
@click.option("--min", "min_instances", type=click.IntRange(1), help="Autoscaling: fewest instances per variant.")
@click.option("--max", "max_instances", type=click.IntRange(1), help="Autoscaling: most instances per variant.")
def command(config_path, name, region, profile, image, model_data, role, instance_type, count, subnets,
            security_groups, min_instances, max_instances):
    """Check quotas, free IPs, high availability, the role, the artifact and the image; change nothing.

    Exits 6 if a check fails (the same checks `sme deploy` runs first unless --skip-preflight).
    """
    from sme.config import Overrides, load_experiment
    from sme.console import ENV
    from sme.core.preflight import preflight

    flags = Overrides(name=name, region=region, profile=profile, image=image, model_data=model_data, role=role,
                      instance_type=instance_type, count=count, subnets=subnets, security_groups=security_groups)
    scaling = {k: v for k, v in (("min", min_instances), ("max", max_instances)) if v is not None}
    if scaling:
        flags.extra["autoscaling"] = scaling
    return preflight(load_experiment(config_path, flags), ENV)
