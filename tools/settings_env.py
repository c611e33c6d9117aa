"""Which environment variables each service reads, found by introspecting its settings class.

A field without an alias is read as ``env_prefix + field name``; a field with
a ``validation_alias`` is read under each string alias (pydantic-settings
matches them without the prefix). Names are compared upper-cased: every
settings class here is case-insensitive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices, AliasPath, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from palette.accounting.settings import AccountingSettings
from palette.common.settings import CommonSettings
from palette.gateway.settings import GatewaySettings
from palette.generator.settings import GeneratorSettings
from palette.scheduler.settings import SchedulerSettings

SERVICE_SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "scheduler": SchedulerSettings,
    "generator": GeneratorSettings,
    "accounting": AccountingSettings,
}


@dataclass(frozen=True, slots=True)
class Setting:
    """One field of a settings class and the environment variables it is read from."""

    field: str
    env_names: tuple[str, ...]
    required: bool
    secret: bool
    default: Any
    description: str

    @property
    def env(self) -> str:
        """The documented name: the first alias, or prefix + field name."""
        return self.env_names[0]


def _aliases(info: FieldInfo) -> list[str]:
    alias = info.validation_alias
    choices: list[Any]
    if alias is None:
        return []
    choices = list(alias.choices) if isinstance(alias, AliasChoices) else [alias]
    return [c for c in choices if isinstance(c, str) and not isinstance(c, AliasPath)]


def settings_of(cls: type[BaseSettings]) -> list[Setting]:
    """Every field of ``cls`` with its environment variable names."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    out = []
    for name, info in cls.model_fields.items():
        aliases = _aliases(info)
        if aliases:
            names = list(dict.fromkeys(a.upper() for a in aliases))
        else:
            names = [f"{prefix}{name}".upper()]
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        out.append(
            Setting(
                field=name,
                env_names=tuple(names),
                required=info.is_required(),
                secret=isinstance(default, SecretStr) or info.annotation is SecretStr,
                default=default,
                description=" ".join((info.description or "").split()),
            )
        )
    return out


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable name ``cls`` reads."""
    return {n for s in settings_of(cls) for n in s.env_names}


def common_fields() -> set[str]:
    """Field names every service inherits from ``CommonSettings``."""
    return set(CommonSettings.model_fields)


def shared_fields() -> set[str]:
    """Common fields read under one name by every service (an alias, no prefix)."""
    return {name for name, info in CommonSettings.model_fields.items() if _aliases(info)}


def shared_settings() -> list[Setting]:
    """The settings one ``.env`` line sets for every service."""
    return [s for s in settings_of(CommonSettings) if s.field in shared_fields()]


def own_settings(service: str) -> list[Setting]:
    """The settings a service reads under its own prefix (its fields and per-process ones).

    ``CommonSettings`` fields without an alias (``metrics_port``) are read with
    each service's prefix (``PALETTE_GENERATOR_METRICS_PORT``), so they are the
    service's own.
    """
    return [s for s in settings_of(SERVICE_SETTINGS[service]) if s.field not in shared_fields()]


def botocore_env_names() -> set[str]:
    """Environment variables boto3/botocore read (credentials and session configuration)."""
    from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES
    from botocore.credentials import EnvProvider

    names = {
        EnvProvider.ACCESS_KEY,
        EnvProvider.SECRET_KEY,
        EnvProvider.EXPIRY_TIME,
        *EnvProvider.TOKENS,
        # Set by EKS for IRSA and read by AssumeRoleWithWebIdentityProvider.
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_SESSION_NAME",
    }
    for spec in BOTOCORE_DEFAUT_SESSION_VARIABLES.values():
        env = spec[1]
        if isinstance(env, str):
            names.add(env)
        elif isinstance(env, list | tuple):
            names.update(e for e in env if isinstance(e, str))
    return names
