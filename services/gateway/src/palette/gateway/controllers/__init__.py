"""One Litestar controller per resource."""

from palette.gateway.controllers.health import HealthController
from palette.gateway.controllers.job_data import JobDataController
from palette.gateway.controllers.jobs import JobController
from palette.gateway.controllers.seeds import SeedDataController, SeedUploadController
from palette.gateway.controllers.template_tools import TemplateToolsController
from palette.gateway.controllers.templates import TemplateController
from palette.gateway.controllers.usage import UsageController
from palette.gateway.controllers.webhooks import WebhookController

__all__ = [
    "HealthController",
    "JobController",
    "JobDataController",
    "SeedDataController",
    "SeedUploadController",
    "TemplateController",
    "TemplateToolsController",
    "UsageController",
    "WebhookController",
]
