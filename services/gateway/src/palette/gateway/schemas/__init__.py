"""Request and response bodies of the REST API.

These are the API's own types, kept apart from the message contracts in
``palette.common.messages``: requests forbid unknown fields, and amounts of
money cross the API as decimal USD strings.
"""

from palette.gateway.schemas.base import (
    FieldProblem,
    Health,
    Name,
    PosInt,
    ProblemDetails,
    Reply,
    Request,
)
from palette.gateway.schemas.dashboard import (
    BudgetPanel,
    CostLine,
    Dashboard,
    ProgressPanel,
    QuotaLine,
    TimingPanel,
    TokensPanel,
)
from palette.gateway.schemas.jobs import (
    CancelOutcome,
    CancelResult,
    CreateJob,
    DownloadLink,
    ExportView,
    JobPage,
    JobView,
)
from palette.gateway.schemas.seeds import (
    MissingExample,
    ParseProblem,
    SeedUpload,
    SeedValidation,
    UploadRequest,
    UploadTicket,
    ValidateSeeds,
)
from palette.gateway.schemas.templates import (
    CreateTemplate,
    ForkTemplate,
    JobEstimateView,
    PreviewRequest,
    PreviewView,
    RateEstimateView,
    StepIn,
    StepOut,
    StepPreviewView,
    TemplatePage,
    TemplateVersions,
    TemplateVersionView,
    TemplateView,
)
from palette.gateway.schemas.usage import UsageGroupBy, UsageKind, UsageRow, UsageView

__all__ = [
    "BudgetPanel",
    "CancelOutcome",
    "CancelResult",
    "CostLine",
    "CreateJob",
    "CreateTemplate",
    "Dashboard",
    "DownloadLink",
    "ExportView",
    "FieldProblem",
    "ForkTemplate",
    "Health",
    "JobEstimateView",
    "JobPage",
    "JobView",
    "MissingExample",
    "Name",
    "ParseProblem",
    "PosInt",
    "PreviewRequest",
    "PreviewView",
    "ProblemDetails",
    "ProgressPanel",
    "QuotaLine",
    "RateEstimateView",
    "Reply",
    "Request",
    "SeedUpload",
    "SeedValidation",
    "StepIn",
    "StepOut",
    "StepPreviewView",
    "TemplatePage",
    "TemplateVersionView",
    "TemplateVersions",
    "TemplateView",
    "TimingPanel",
    "TokensPanel",
    "UploadRequest",
    "UploadTicket",
    "UsageGroupBy",
    "UsageKind",
    "UsageRow",
    "UsageView",
    "ValidateSeeds",
]
