"""Which gateway the commands talk to, and as whom.

In order, the first that is set wins:

- the gateway URL: ``--url``, ``PALETTE_URL``, ``url`` in the config file, the
  gateway of the one-machine system ``palette up`` runs (its ``run.json``);
- the bearer token: ``--token``, ``PALETTE_TOKEN``, ``token`` in the config
  file, else, for the one-machine system's own gateway only, a token minted
  with its signing secret for the user ``PALETTE_USER`` (or ``user`` in the
  config file, or the login name).

The config file is ``PALETTE_CONFIG``, else ``$XDG_CONFIG_HOME/palette/config.toml``
(``~/.config/palette/config.toml``): a TOML table with ``url``, ``token``, ``user``.
"""

from __future__ import annotations

import getpass
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from palette.cli.state import StateDir

CONFIG_ENV = "PALETTE_CONFIG"
KEYS = ("url", "token", "user")
LOCAL_TOKEN_SECONDS = 12 * 3600
_USER_CHARS = re.compile(r"[^A-Za-z0-9._:@-]")


class ConfigError(RuntimeError):
    """No gateway or token can be found, or the config file is unreadable."""


def config_path() -> Path:
    """The config file's path (it need not exist)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(home).expanduser() / "palette" / "config.toml"


def read_config(path: Path | None = None) -> dict[str, Any]:
    """The config file's table (empty when there is none)."""
    file = path or config_path()
    try:
        with file.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ConfigError(f"{file}: unknown keys {unknown}; known keys are {list(KEYS)}")
    return data


def write_config(values: dict[str, Any], path: Path | None = None) -> Path:
    """Write the config file (mode 0600: it may hold a token)."""
    file = path or config_path()
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        tomli_w.dump(values, handle)
    return file


def local_user(config: dict[str, Any]) -> str:
    """The user a minted local token names."""
    name = os.environ.get("PALETTE_USER") or config.get("user")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "local"
    return _USER_CHARS.sub("-", str(name))[:200] or "local"


@dataclass(frozen=True)
class Connection:
    """A gateway and the token to call it with."""

    url: str
    token: str


def resolve(
    url: str | None = None, token: str | None = None, state_dir: Path | None = None
) -> Connection:
    """The gateway and token the commands use (see the module docstring)."""
    config = read_config()
    state = StateDir(state_dir)
    run = state.read_run()
    local_url = run.gateway_url if run is not None else None
    chosen = url or os.environ.get("PALETTE_URL") or config.get("url") or local_url
    if not chosen:
        raise ConfigError(
            "no gateway to talk to: run `palette up`, or set PALETTE_URL (or `url` in "
            f"{config_path()})"
        )
    chosen = chosen.rstrip("/")
    bearer = token or os.environ.get("PALETTE_TOKEN") or config.get("token")
    if bearer:
        return Connection(chosen, bearer)
    secret = state.existing_jwt_secret()
    if chosen == local_url and secret is not None:
        return Connection(chosen, mint_local(state, config))
    raise ConfigError(
        f"no token for {chosen}: set PALETTE_TOKEN (or `token` in {config_path()}); "
        "`palette token` mints one for a one-machine system"
    )


def mint_local(
    state: StateDir,
    config: dict[str, Any] | None = None,
    sub: str | None = None,
    ttl_seconds: int = LOCAL_TOKEN_SECONDS,
) -> str:
    """A token for the one-machine system's gateway, signed with its secret."""
    from palette.gateway.bearer_tokens import mint

    secret = state.existing_jwt_secret()
    if secret is None:
        raise ConfigError(f"{state.path} has no signing secret yet: run `palette up` first")
    return mint(sub or local_user(config or read_config()), secret, ttl_seconds=ttl_seconds)
