import click

from sme.commands.options import aws_options


@click.command("status")
@click.option("--name", help="Experiment (endpoint) name.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Experiment file (for its name).")
@aws_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--show-secret", is_flag=True, help="Also print the front door's API key.")
@click.pass_obj
def command(env, name, config_path, region, profile, as_json, show_secret):
    """Show the endpoint: status, config, and each variant's current/desired instances."""
    from sme.commands.common import experiment_name
    from sme.deploy import status

    name, region, profile = experiment_name(name, config_path, region, profile)
    return status(name, region, profile, env, as_json, show_secret)
