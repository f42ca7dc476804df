import click

from sme.commands.options import aws_options, lock_option


@click.command("teardown")
@click.option("--name", help="Experiment name.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Experiment file (for its name).")
@aws_options
@click.option("--dry-run", is_flag=True, help="List what would be removed and remove nothing.")
@lock_option
@click.pass_obj
def command(env, name, config_path, region, profile, dry_run, lock_timeout):
    """Remove everything sme made for an experiment, in dependency order, and say what."""
    from sme.commands.common import experiment_name
    from sme.deploy import teardown

    name, region, profile = experiment_name(name, config_path, region, profile)
    return teardown(name, region, profile, env, dry_run, lock_timeout)
