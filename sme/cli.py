"""sme's command line: thin Click commands and the one error boundary.

Commands only declare options and hand over to a ``run_*`` function, importing heavy modules inside the
command body (aws-sam-cli's ``do_cli``). `sme --help` imports click and nothing heavy.
``main`` is the only place that turns exceptions into a message and an exit status (httpie's core).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

import click

from sme import __version__
from sme.errors import ExitStatus

if TYPE_CHECKING:
    from sme.console import Env

# command name -> module under sme.commands defining `command` (a click.Command)
COMMANDS = {
    "deploy": "deploy",
    "status": "status",
    "teardown": "teardown",
    "preflight": "preflight",
    "rollback": "rollback",
    "invoke": "invoke",
    "loadtest": "loadtest",
    "watch": "watch",
    "local": "local",
    "demo": "demo",
    "run": "run",
    "report": "report",
    "plan-capacity": "plan_capacity",
    "recommend": "recommend",
}


class LazyGroup(click.Group):
    """Loads each command's module only when it is listed or run (the modules import click only)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._module(name) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = self._module(name)
        return getattr(module, "command", None) if module else None

    @staticmethod
    def _module(name: str):  # type: ignore[no-untyped-def]
        modname = COMMANDS.get(name)
        if modname is None:
            return None
        try:
            return importlib.import_module(f"sme.commands.{modname}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sme.commands.{modname}":
                return None
            raise


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="sme")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug detail on errors.")
@click.pass_obj
def cli(env, verbose: bool) -> None:  # type: ignore[no-untyped-def]
    """Deploy, load-test and watch Amazon SageMaker real-time endpoints, repeatably, from a shell."""
    env.verbose = verbose


def main(argv: list[str] | None = None) -> None:
    code = run(argv)
    # CPython 3.11 remembers a KeyboardInterrupt that once escaped code run from a string (dataclasses and
    # namedtuples are made by exec of a string, so a Ctrl-C during an import can land there) even after sme
    # caught it, and then ends the process by SIGINT instead of with this status. exec of a string that
    # completes clears the flag (Python/pythonrun.c, run_eval_code_obj), so 130 stays 130.
    exec("")  # noqa: S102 - an empty string, see above
    sys.exit(code)


def run(argv: list[str] | None = None, env: "Env | None" = None) -> int:
    """Run the CLI and return the exit status; every exception ends here. ``env`` (streams, clock) is handed
    down to every command (tests pass their own)."""
    from sme.console import Env

    env = env or Env()
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    try:
        rv = cli.main(args=args, prog_name="sme", standalone_mode=False, obj=env)
        return int(rv) if isinstance(rv, int) else ExitStatus.OK
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        _say(env, "sme: interrupted")
        return ExitStatus.INTERRUPTED
    except click.ClickException as exc:
        exc.show(file=env.stderr)
        return ExitStatus.USAGE
    except KeyboardInterrupt:
        _say(env, "sme: interrupted")
        return ExitStatus.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one boundary
        return _report(env, exc, verbose)


def _report(env, exc: Exception, verbose: bool) -> int:  # type: ignore[no-untyped-def]
    from sme.errors import SmeError

    if isinstance(exc, SmeError):
        if verbose:
            _traceback(env)
        _say(env, f"sme: error: {exc.render()}")
        return int(exc.status)
    if _is_botocore(exc):
        from sme.aws import error_code

        op = getattr(exc, "operation_name", "") or "call"
        code = error_code(exc)
        if verbose:
            _traceback(env)
        _say(env, f"sme: error: AWS {op} failed{f' ({code})' if code else ''}: {exc}")
        return int(ExitStatus.ERROR)
    _traceback(env) if verbose else None
    _say(env, f"sme: internal error: {type(exc).__name__}: {exc}"
              + ("" if verbose else "\n  (run again with -v for the traceback)"))
    return int(ExitStatus.ERROR)


def _is_botocore(exc: Exception) -> bool:
    return type(exc).__module__.startswith("botocore")


def _traceback(env) -> None:  # type: ignore[no-untyped-def]
    import traceback

    traceback.print_exc(file=env.stderr)


def _say(env, text: str) -> None:  # type: ignore[no-untyped-def]
    print(text, file=env.stderr, flush=True)
