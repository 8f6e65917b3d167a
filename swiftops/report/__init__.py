"""One self-contained HTML page per sweep, answering "which run, and what next".

    python -m swiftops.report SWEEP_DIR [-o FILE]     # regenerate from the runs on disk

Reads each job's run.json (swiftops.record) and its curves (swiftops.curves), and writes
`<report dir>/<sweep id>.html` with `<sweep id>.summary.csv` and `<sweep id>.summary.json`
beside it. The page has images inline (PNG data URIs), styles inline, one small inline script
(table sorting, allowed by its hash in the page's Content-Security-Policy) and nothing from the
network. Every string from the runs goes through Jinja2's autoescape.

The package, from the bottom up:
- formats: how the page writes values (its Jinja filters);
- data: the runs as the report sees them, the comparison table, the best run (load_runs reads the
  folder, the rest is pure);
- plots: curves -> small PNG images (matplotlib, imported only to draw);
- views: the page's figures from its runs;
- render: runs -> the page (render_report, pure), and write_report, which writes it.
"""
