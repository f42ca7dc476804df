import click

from sme.commands.options import aws_options, lock_option, parse_duration_option


@click.command("rollback")
@click.option("--name", help="Experiment (endpoint) name.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Experiment file (for its name).")
@aws_options
@click.option("--to", "to_config", metavar="CONFIG", help="Endpoint config to return to (default: the previous one).")
@click.option("--timeout", default="30m", callback=parse_duration_option, show_default=True,
              help="How long to wait for InService.")
@click.option("--poll-interval", default="15s", callback=parse_duration_option, show_default=True,
              help="How often to check the endpoint while waiting.")
@lock_option
@click.pass_obj
def command(env, name, config_path, region, profile, to_config, timeout, poll_interval, lock_timeout):
    """Return the endpoint to its previous (or a named) endpoint config, and verify it took."""
    from sme.commands.common import experiment_name
    from sme.deploy import rollback

    name, region, profile = experiment_name(name, config_path, region, profile)
    return rollback(name, to_config, region, profile, env, timeout=timeout, poll=poll_interval,
                    lock_timeout=lock_timeout)
