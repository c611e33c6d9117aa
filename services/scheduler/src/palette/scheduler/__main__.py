"""``python -m palette.scheduler``: run the scheduler service."""

from __future__ import annotations

from palette.common.service import run_service
from palette.scheduler.app import create_app
from palette.scheduler.settings import SchedulerSettings


def main() -> None:
    """Run the scheduler until stopped."""
    settings = SchedulerSettings()
    run_service("scheduler", settings, lambda: create_app(settings))


if __name__ == "__main__":
    main()
