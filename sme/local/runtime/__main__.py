"""`python -m sme.local.runtime --model-data model.tar.gz [--port P] [--workers N] [--status-file F]`

One process stands for one endpoint instance. It unpacks the model data into a temporary model
directory, works out the serving convention, and serves SageMaker's container contract on gunicorn.
Defaults come from the container's environment variables: SAGEMAKER_BIND_TO_PORT (8080),
SAGEMAKER_MODEL_SERVER_WORKERS (one per CPU, as the container), SAGEMAKER_MODEL_SERVER_TIMEOUT (60 s),
MAX_CONTENT_LENGTH (6 MiB). `--port 0` takes a free port, reported in the status file once ready.
Built-in XGBoost models serve the 1.7-1 container's contract (see xgboost_contract), or the 3.x one when
SME_CONTAINER_IMAGE names a 3.x image; SME_LENIENT_INPUT=1 also reads JSON bodies, which the container
refuses. A TGI or LMI image (or HF_MODEL_ID in the environment) serves text generation with TGI's
contract from sme's own small generator (see textgen), with or without model data.

Exit status: 1 when the model cannot be served (the reason is on stderr and in the status file),
2 for bad arguments, 3 when a worker fails to load the model, 0 after a clean stop (SIGTERM/SIGINT).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from sme.local.runtime.artifact import (TEXT_GENERATION, XGBOOST, Artifact, ModelLoadError, inspect,
                                        text_generation_wanted, unpack)
from sme.local.runtime.status import FAILED, write_status

log = logging.getLogger("sme.runtime")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"sme-runtime: {name}={value!r} is not a whole number")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sme.local.runtime", description=__doc__.split("\n\n")[1])
    parser.add_argument("--model-data", type=Path, help="the model.tar.gz to serve (a text-generation container "
                        "needs none)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=_env_int("SAGEMAKER_BIND_TO_PORT", 8080))
    parser.add_argument("--workers", type=int, default=_env_int("SAGEMAKER_MODEL_SERVER_WORKERS", os.cpu_count() or 1))
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    parser.add_argument("--timeout", type=int, default=_env_int("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60))
    parser.add_argument("--status-file", type=Path, help="where to write the ready/failed JSON document")
    parser.add_argument("--model-dir", type=Path, help="unpack here (kept) instead of a temporary directory")
    parser.add_argument("--cpus", type=_cpu_list, help="run on these CPUs only, e.g. 0,1 (the twin gives an "
                        "instance the cores of its instance type; workers inherit it)")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="stop when the process that started this one goes away (no orphaned runtimes)")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.threads < 1 or args.timeout < 1 or not 0 <= args.port <= 65535:
        parser.error("--workers, --threads and --timeout must be at least 1 and --port within 0..65535")
    return args


def _cpu_list(text: str) -> set[int]:
    try:
        cpus = {int(c) for c in text.split(",") if c.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of CPU numbers such as 0,1") from None
    if not cpus:
        raise argparse.ArgumentTypeError("give at least one CPU number")
    return cpus


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cpus:  # before any worker is forked: they inherit the affinity
        os.sched_setaffinity(0, args.cpus)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s [%(process)d] [sme-runtime] %(levelname)s %(message)s")
    model_dir = args.model_dir or Path(tempfile.mkdtemp(prefix="sme-model-"))
    model_dir.mkdir(parents=True, exist_ok=True)
    master_pid = os.getpid()
    try:
        try:
            artifact = _artifact(args.model_data, model_dir)
            _check_port(args.host, args.port)
        except ModelLoadError as e:
            log.error("model load failed: %s", e)
            write_status(args.status_file, FAILED, reason=str(e))
            return 1
        os.environ["SM_MODEL_DIR"] = str(model_dir)  # where handler scripts look, as /opt/ml/model in SageMaker
        if artifact.requirements:
            log.warning("code/requirements.txt lists %s; local mode does not install packages, so the "
                        "runtime's environment must already have them", ", ".join(artifact.requirements))
        if artifact.convention == XGBOOST:
            import xgboost  # noqa: F401  imported once here so that forked workers start warm

        if artifact.convention == TEXT_GENERATION:
            _serve_text_generation(args)

        from sme.local.runtime.server import ServerOptions, serve

        options = ServerOptions(host=args.host, port=args.port, workers=args.workers, threads=args.threads,
                                timeout=args.timeout, status_file=args.status_file,
                                parent_pid=os.getppid() if args.exit_with_parent else None,
                                max_body=_env_int("MAX_CONTENT_LENGTH", 6 * 2**20))
        serve(artifact, options, {"convention": artifact.convention, "requirements": list(artifact.requirements),
                                  "model_dir": str(model_dir)})
        return 0
    finally:
        # gunicorn's workers unwind through here too when they exit: only the master cleans up.
        if os.getpid() == master_pid and args.model_dir is None:
            shutil.rmtree(model_dir, ignore_errors=True)


def _artifact(model_data: Path | None, model_dir: Path) -> Artifact:
    if model_data is not None:
        unpack(model_data, model_dir)
    if text_generation_wanted(os.environ):  # TGI loads its weights itself: whatever the data holds
        return Artifact(model_dir, TEXT_GENERATION)
    if model_data is None:
        raise ModelLoadError("no model data: pass --model-data model.tar.gz (only a TGI or LMI image, or a model "
                             "with HF_MODEL_ID, serves without one)")
    return inspect(model_dir)


def _serve_text_generation(args: argparse.Namespace) -> None:
    """One worker holds the one decode loop (as TGI runs one server per model); every stream holds a
    gthread thread while it lasts, so the threads are MAX_CONCURRENT_REQUESTS plus a few for /ping and
    the 429s past the limit. numpy's arithmetic stays on one core per instance."""
    limit = _env_int("MAX_CONCURRENT_REQUESTS", 128)
    args.workers, args.threads = 1, max(args.threads, limit + 8)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    log.info("text generation (TGI's contract): 1 worker, %d threads", args.threads)


def _check_port(host: str, port: int) -> None:
    """Fail with a clear reason now rather than after gunicorn's five bind retries."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise ModelLoadError(f"cannot listen on {host}:{port}: {e.strerror}") from None


if __name__ == "__main__":
    sys.exit(main())
