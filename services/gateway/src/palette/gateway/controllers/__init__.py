"""One Litestar controller per resource."""

from palette.gateway.controllers.health import HealthController
from palette.gateway.controllers.jobs import JobController
from palette.gateway.controllers.seeds import SeedDataController
from palette.gateway.controllers.templates import TemplateController

__all__ = ["HealthController", "JobController", "SeedDataController", "TemplateController"]
