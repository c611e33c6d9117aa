"""Plot Palette's benchmark harness: ``python -m bench [--quick]``, ``make bench``."""
