"""`sme recommend`: which instance type (or serverless size) meets the SLO at the lowest cost.

    recommend.yaml --config.load--> Recommend (inert; every candidate checked as the experiment it becomes)
      --candidates.derive--> DIR/<candidate>/sme.yaml + load.yaml       (the base experiment, endpoint replaced)
      --sweep.run--> per candidate, `parallel` at once: sme deploy -> sme loadtest (the ladder) -> sme report
                     -> sme teardown, progress in DIR/sweep.json (atomic), resumable with --resume DIR
      --results.build--> DIR/recommendation.json (knee, cost at peak, best)  --page.render--> DIR/report.html

Each step runs the real CLI as a subprocess, as `sme demo` does, so a candidate's run folder is exactly what
`sme loadtest` and `sme report` write. The knee and the cost come from ``sme.capacity`` and
``sme.report.kind_cost``, never recomputed here.
"""
