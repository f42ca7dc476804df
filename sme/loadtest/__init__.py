"""Load tests with Locust as the engine, run in a child process.

Parent side (the CLI process; never imports locust or gevent): ``config`` (the file), ``payloads``,
``targets`` (deploy state, URL, signing), ``shapes`` (stages as a pure schedule), ``stats`` (HDR
histograms and their merge), ``slo``, ``results`` (summary.json, timeseries.csv, SLO table) and
``runner`` (process, live display, signals, exit code).

Child side (``python -m sme.loadtest.child``): ``locustfile`` (users, shape, open-model scheduler,
statistics plumbing) and ``progress`` (the master's merge, progress lines and final tally).
"""
