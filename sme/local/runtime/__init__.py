"""A local stand-in for a SageMaker inference container; see `sme.local.runtime.process` for the API.

Layout: `artifact` unpacks a model.tar.gz and decides which serving convention it follows,
`codecs` turns request bodies into rows and predictions into response bodies, `model_loader` builds
the model for each convention, `server` is the WSGI app and its gunicorn wiring, `__main__` is the
process entry point and `process` starts and watches such processes from Python.
"""

from sme.local.runtime.process import RuntimeFailed, RuntimeProcess, start_runtime

__all__ = ["RuntimeFailed", "RuntimeProcess", "start_runtime"]
