"""`sme report` and the pieces `sme plan-capacity` shares with it.

A report is a pipeline of pure steps, each in its own module:

    run directory --rundir--> Run (summary, per-second rows, watch samples, notes on what is missing)
                 --timeline-> Timeline (every series on one axis: seconds since the run started)
                 --summary--> Headline (SLO verdicts, peak req/s, p99, errors, instance-minutes, cost)
                 --charts---> inline SVG strings (svg.py draws axes, bands, lines, markers)
                 --page-----> one self-contained HTML file (no script or style from the network)

Only ``build.run_report`` touches the disk and the console; prices come from ``pricing`` (the AWS
Pricing API when it answers, else the table in ``sme/data/prices.json``).
"""
