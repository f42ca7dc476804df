"""`sme run`: the whole experiment in one command, with what happens during it on the report's time axis.

    run.yaml --config.load_run_file--> RunFile          (every check, exit 2, before anything is deployed)
    RunFile --orchestrate.run_experiment-->
        deploy (sme.deploy, in this process)      -> the endpoint, recorded in .sme/<name>.json
        sme watch (a child process)               -> DIR/watch.jsonl, every `watch.interval`
        sme loadtest (sme.loadtest.runner)        -> DIR/summary.json, timeseries.csv
          + events (events.EventRunner, a thread) -> DIR/run.json: what each event did, when, with what result
        one interval more of watching, then       -> DIR/report.html (sme.report + marks.py: the events on it)
        teardown (unless `teardown: false`)

``config`` checks the file, ``events`` fires the events on time (the clock is injected), ``actions``
carries one event out against AWS (or the twin), ``marks`` turns ``run.json`` into verdicts on the report.
"""
