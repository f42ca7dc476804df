import click

from sme.commands.options import aws_options


@click.command("invoke")
@click.option("--name", help="Experiment (endpoint) name.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Experiment file (for its name).")
@aws_options
@click.option("--body", required=True, metavar="@FILE|-|TEXT", help="The payload: @file, - for stdin, or the text.")
@click.option("--content-type", default="text/csv", show_default=True, help="Content type of the payload.")
@click.option("--accept", help="Content type to ask the model for.")
@click.option("--via", type=click.Choice(["gateway", "endpoint"]),
              help="Through the front door, or straight to the endpoint (default: the front door if there is one).")
@click.pass_obj
def command(env, name, config_path, region, profile, body, content_type, accept, via):
    """Send one request; print the reply on stdout and status and latency on stderr.

    Piped or redirected, stdout is the reply byte for byte; on a terminal, a newline ends it.
    """
    from sme.commands.common import experiment_name
    from sme.core.invoke import invoke

    name, region, profile = experiment_name(name, config_path, region, profile)
    return invoke(name, body, content_type, accept, via, region, profile, env)
