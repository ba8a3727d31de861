"""The run report: one self-contained HTML page per evaluate run and an index of the runs.

``page`` turns a run's stored frames into the page (tables in HTML, figures from
stockpred.plots.report inline as PNG); the templates are jinja2 files beside it. It
reads nothing from disk but its templates: the report stage hands it the frames.
"""
