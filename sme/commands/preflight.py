import click

from sme.commands.options import experiment_options


@click.command("preflight")
@experiment_options
@click.pass_obj
def command(env, **flags):
    """Check quotas, free IPs, high availability, the role, the artifact and the image; change nothing.

    Exits 6 if a check fails (the same checks `sme deploy` runs first unless --skip-preflight).
    """
    from sme.commands.options import load_experiment_from_flags
    from sme.deploy import preflight

    return preflight(load_experiment_from_flags(flags), env)
