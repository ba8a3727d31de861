"""Figures. Rendered off-screen (Agg), so they work from cron and on machines without a display."""

import matplotlib

matplotlib.use("Agg")
