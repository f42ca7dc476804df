"""A Lambda execution environment for the local AWS: ``python -m sme.local.aws.lambda_runtime CODE_DIR HANDLER``.

One process runs one function's code, one event at a time, as Lambda does: the environment (the
function's variables, its region, AWS calls pointed at the local AWS) is set by whoever starts it
(``sme.local.aws.execute_api``). Events arrive as JSON lines on stdin; each gets one JSON line on the
original stdout: ``{"result": ...}`` or ``{"error": {"errorType", "errorMessage"}}``. What the handler
prints or logs goes to stderr, as Lambda sends it to the function's log.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback


def main() -> None:
    code_dir, handler = sys.argv[1], sys.argv[2]
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the handler's prints must not mix with the replies
    sys.stdout = sys.stderr
    sys.path.insert(0, code_dir)
    module_name, _, function_name = handler.rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # noqa: BLE001 - Lambda reports an init error on every invoke
        function, init_error = None, {"errorType": "Runtime.ImportModuleError", "errorMessage":
                                      f"Unable to import module '{module_name}': {type(exc).__name__}: {exc}"}
    for line in sys.stdin:
        if function is None:
            protocol.write(json.dumps({"error": init_error}) + "\n")
            continue
        try:
            result = function(json.loads(line), None)
            reply = {"result": result}
        except Exception as exc:  # noqa: BLE001 - becomes the invocation's error, as in Lambda
            traceback.print_exc()
            reply = {"error": {"errorType": type(exc).__name__, "errorMessage": str(exc)}}
        try:
            protocol.write(json.dumps(reply) + "\n")
        except (TypeError, ValueError) as exc:
            protocol.write(json.dumps({"error": {"errorType": "Runtime.MarshalError", "errorMessage": str(exc)}})
                           + "\n")


if __name__ == "__main__":
    main()
