"""Webhooks: the events a user may subscribe to, their ids, and where a delivery may go.

Events
    A job's end (``job.completed``, ``job.failed``, ``job.budget_exceeded``,
    ``job.cancelled``) and its spend crossing 75 % and 90 % of its budget
    (``job.budget_threshold``). Each event has one id, derived from what it
    is about (``event_id``), so every delivery of it, a retry, a re-send or a
    redelivered message, carries the same ``webhook-id`` and a receiver can
    deduplicate on it.

Targets (no SSRF)
    An endpoint is ``https`` and its host resolves only to public addresses:
    any address that is loopback, private, link-local, multicast, reserved,
    or a cloud provider's metadata service refuses the whole host. The
    sender connects to an address it checked (``resolve_target``), never
    resolves the name a second time, and never follows a redirect. Hosts in
    ``PALETTE_WEBHOOK_ALLOWED_HOSTS`` (development and tests) skip these checks
    and may use ``http``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit

from palette.common.messages import JobStatus


class WebhookEvent(StrEnum):
    """What a webhook may subscribe to."""

    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_BUDGET_EXCEEDED = "job.budget_exceeded"
    JOB_CANCELLED = "job.cancelled"
    JOB_BUDGET_THRESHOLD = "job.budget_threshold"


TEST_EVENT: Final = "webhook.test"
"""The type of a test-send: every webhook gets it when asked, whatever it subscribes to."""

BUDGET_THRESHOLDS: Final = (75, 90)
"""Percentages of a job's budget whose crossing is announced once each."""

STATUS_EVENTS: Final[Mapping[JobStatus, WebhookEvent]] = {
    JobStatus.COMPLETED: WebhookEvent.JOB_COMPLETED,
    JobStatus.FAILED: WebhookEvent.JOB_FAILED,
    JobStatus.BUDGET_EXCEEDED: WebhookEvent.JOB_BUDGET_EXCEEDED,
    JobStatus.CANCELLED: WebhookEvent.JOB_CANCELLED,
}

MAX_URL_CHARS: Final = 2048


def event_id(job_id: str, event: WebhookEvent, threshold: int | None = None) -> str:
    """The id of a job's event: the same however often it is announced or delivered."""
    name = f"palette:webhook-event:{job_id}:{event.value}:{threshold or ''}"
    return f"msg_{uuid.uuid5(uuid.NAMESPACE_URL, name).hex}"


def new_test_event_id() -> str:
    """The id of a new test-send (each one is an event of its own)."""
    return f"msg_{uuid.uuid4().hex}"


def new_webhook_id() -> str:
    """A new webhook id."""
    return f"wh_{uuid.uuid4().hex}"


def crossed_thresholds(spent: int, budget: int, announced: Collection[int] = ()) -> list[int]:
    """The thresholds ``spent`` has reached (``spent * 100 >= t * budget``), not yet announced."""
    if budget <= 0:
        return []
    return [t for t in BUDGET_THRESHOLDS if t not in announced and spent * 100 >= t * budget]


# ------------------------------------------------------------------ targets

METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS VPC DNS
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)


class WebhookTargetError(ValueError):
    """A webhook URL that cannot be delivered to."""


class RefusedTargetError(WebhookTargetError):
    """The URL is not allowed: wrong scheme, bad form, or a host with a non-public address."""


class UnresolvedTargetError(WebhookTargetError):
    """The URL's host does not resolve (now)."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


def blocked_reason(address: str | IPAddress) -> str | None:
    """Why a delivery may not connect to ``address``, or None when it is a public address."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    checks: list[tuple[bool, str]] = [
        (ip in METADATA_ADDRESSES, "a cloud metadata address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    ]
    return next((reason for hit, reason in checks if hit), None)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a delivery goes: the URL, its host and port, and the addresses checked.

    ``addresses`` is empty for an allow-listed host: the client connects to it
    by name (development and tests only).
    """

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]

    @property
    def allow_listed(self) -> bool:
        """Whether the host skipped the address checks."""
        return not self.addresses


def parse_target(url: str, allowed_hosts: Collection[str]) -> Target:
    """Check a URL's form and scheme; its target without addresses yet.

    Raises:
        RefusedTargetError: naming what is wrong with the URL.
    """
    if len(url) > MAX_URL_CHARS:
        raise RefusedTargetError(f"the URL is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedTargetError(f"not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    if scheme not in ("http", "https") or not host:
        raise RefusedTargetError("must be an absolute https URL (https://host/path)")
    if parts.username is not None or parts.password is not None:
        raise RefusedTargetError("must not carry a user name or password")
    if any(c.isspace() or ord(c) < 0x21 for c in url):
        raise RefusedTargetError("must not contain spaces or control characters")
    allowed = host in {h.rstrip(".").lower() for h in allowed_hosts}
    if scheme != "https" and not allowed:
        raise RefusedTargetError(
            f"must use https (http is allowed only for hosts in PALETTE_WEBHOOK_ALLOWED_HOSTS, "
            f"and {host} is not one)"
        )
    default = 443 if scheme == "https" else 80
    return Target(url=url, scheme=scheme, host=host, port=port or default, addresses=())


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (TCP), in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve_target(
    url: str,
    allowed_hosts: Collection[str],
    *,
    resolver: Resolver = system_resolver,
    resolve_seconds: float = 5.0,
) -> Target:
    """The target of a URL with every address its host resolves to, each one checked.

    Raises:
        RefusedTargetError: the URL is malformed, not https, or its host has an
            address that is not public (the reason names the address).
        UnresolvedTargetError: the host does not resolve (in ``resolve_seconds``).
    """
    target = parse_target(url, allowed_hosts)
    if target.host in {h.rstrip(".").lower() for h in allowed_hosts}:
        return target
    literal = _literal(target.host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            async with asyncio.timeout(resolve_seconds):
                addresses = await resolver(target.host, target.port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise UnresolvedTargetError(
                f"{target.host} does not resolve ({type(exc).__name__}: {exc})"
            ) from None
        if not addresses:
            raise UnresolvedTargetError(f"{target.host} does not resolve to any address")
    for address in addresses:
        reason = blocked_reason(address.split("%", 1)[0])
        if reason is not None:
            if literal is not None:
                where = f"{target.host} is"
            else:
                where = f"{target.host} resolves to {address},"
            raise RefusedTargetError(f"{where} {reason}: webhooks go to public addresses only")
    return Target(target.url, target.scheme, target.host, target.port, tuple(addresses))
