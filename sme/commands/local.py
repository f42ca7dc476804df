import click

from sme.aws import LOCAL_AWS_PORT


@click.group("local")
def command():
    """A local AWS on loopback whose SageMaker endpoints are real model runtimes (no AWS account)."""


@command.command("start")
@click.option("--port", default=LOCAL_AWS_PORT, show_default=True, help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False), help="Where runtimes keep artifacts and logs.")
@click.option("--ready-file", type=click.Path(dir_okay=False), help="Write the environment here once serving.")
@click.pass_obj
def start(env, port, region, workdir, ready_file):
    """Serve the local AWS in the foreground until Ctrl-C; prints the environment to export."""
    from sme.local.start import run_local

    return run_local(env, port, region, workdir, ready_file)
