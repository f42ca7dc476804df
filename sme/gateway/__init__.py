"""The front door's Lambda proxy: ``handler.py`` is shipped as source and zipped at deploy (``package.py``)."""
