"""`sme` ends with the status its boundary chose, also after a Ctrl-C that landed in code run from a string."""

import subprocess
import sys

# A KeyboardInterrupt raised inside exec of a string (as in a dataclass or namedtuple being made during a
# lazy import) and caught by sme; CPython 3.11 would still end the process by SIGINT (returncode -2).
SCRIPT = """
from sme import cli

def interrupted(argv=None, env=None):
    try:
        exec("raise KeyboardInterrupt")
    except KeyboardInterrupt:
        return 130
    return 0

cli.run = interrupted
cli.main([])
"""


def run_module(tmp_path, source: str) -> subprocess.CompletedProcess:
    """As `python -m sme` runs: only a module run by -m ends through the path that checks CPython's flag."""
    (tmp_path / "as_sme.py").write_text(source)
    return subprocess.run([sys.executable, "-m", "as_sme"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)


def test_a_caught_ctrl_c_inside_exec_still_exits_130(tmp_path):
    result = run_module(tmp_path, SCRIPT)
    assert result.returncode == 130, (result.returncode, result.stderr[-2000:])


def test_the_plain_status_is_kept(tmp_path):
    result = run_module(tmp_path, "from sme import cli\ncli.run = lambda argv=None, env=None: 3\ncli.main([])\n")
    assert result.returncode == 3, result.stderr[-2000:]
