"""Plot Palette's benchmark harness (issue 5): ``python -m bench [--quick]``, ``make bench``."""
