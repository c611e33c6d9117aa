"""Template variables drawn per record, and the order in which records draw seeds.

Pure logic, no I/O. Every draw is a function of the job id and the record's
index (and, for the seed-derived ones, of the seed file), never of time or of
which generator makes the record: a partition run again draws the same.

A template's ``variables`` map a name to a sampler; a step reads the draw as
``{{ vars.NAME }}``:

- ``category``: one of ``values``, by ``weights`` when given (else uniformly);
- ``int``: an integer in ``[min, max]``; ``float``: a number in ``[min, max]``;
- ``choice_from_seed``: one of the distinct values the seed file has in ``field``.

A job's ``seed_sampling`` says which seed record record ``i`` draws:
``uniform`` (with replacement: ``seeds.seed_index``), ``shuffle`` (every seed
once per epoch of ``seed_count`` records, in an order of the job's own) or
``{"stratify": FIELD}`` (the field's values take turns, so each is drawn as
often as the others; within a value its records are shuffled).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from palette.common.seeds import seed_index

VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
FIELD_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
MAX_VARIABLES = 32
MAX_CATEGORY_VALUES = 1_000
MAX_DISTINCT_SEED_VALUES = 100_000
Scalar = str | int | float | bool


class _Sampler(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CategorySampler(_Sampler):
    """One of ``values``, weighted by ``weights`` when given."""

    type: Literal["category"]
    values: Annotated[list[Scalar], Field(min_length=1, max_length=MAX_CATEGORY_VALUES)]
    weights: list[Annotated[float, Field(gt=0)]] | None = None

    @model_validator(mode="after")
    def _weights_match(self) -> CategorySampler:
        if self.weights is not None and len(self.weights) != len(self.values):
            raise ValueError(
                f"weights has {len(self.weights)} entries but values has {len(self.values)}"
            )
        return self


class IntSampler(_Sampler):
    """An integer in ``[min, max]``, uniformly."""

    type: Literal["int"]
    min: int
    max: int

    @model_validator(mode="after")
    def _ordered(self) -> IntSampler:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class FloatSampler(_Sampler):
    """A number in ``[min, max]``, uniformly."""

    type: Literal["float"]
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> FloatSampler:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class SeedChoiceSampler(_Sampler):
    """One of the distinct values of a seed field, uniformly."""

    type: Literal["choice_from_seed"]
    field: Annotated[str, Field(pattern=FIELD_PATH, max_length=200)]


Sampler = Annotated[
    CategorySampler | IntSampler | FloatSampler | SeedChoiceSampler, Field(discriminator="type")
]


class Stratify(BaseModel):
    """``{"stratify": FIELD}``: the field's values drawn in turn."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stratify: Annotated[str, Field(pattern=FIELD_PATH, max_length=200)]


SeedSampling = Literal["uniform", "shuffle"] | Stratify


def seed_fields(variables: Mapping[str, Any], sampling: SeedSampling = "uniform") -> list[str]:
    """The seed fields the samplers and the seed sampling read (dotted paths), sorted."""
    fields = {s.field for s in variables.values() if isinstance(s, SeedChoiceSampler)}
    if isinstance(sampling, Stratify):
        fields.add(sampling.stratify)
    return sorted(fields)


def _rng(*key: object) -> random.Random:
    material = "/".join(str(part) for part in key).encode()
    digest = hashlib.blake2b(material, digest_size=16).digest()
    return random.Random(int.from_bytes(digest, "big"))  # noqa: S311 (a draw, not crypto)


def draw_variables(
    variables: Mapping[str, Any],
    job_id: str,
    index: int,
    seed_values: Mapping[str, Sequence[Scalar]] | None = None,
) -> dict[str, Scalar]:
    """Record ``index``'s draw of every variable (``seed_values``: each seed field's values).

    Raises:
        KeyError: a ``choice_from_seed`` field has no values in ``seed_values``.
    """
    drawn: dict[str, Scalar] = {}
    for name, sampler in variables.items():
        rng = _rng(job_id, index, "vars", name)
        if isinstance(sampler, CategorySampler):
            drawn[name] = rng.choices(sampler.values, weights=sampler.weights)[0]
        elif isinstance(sampler, IntSampler):
            drawn[name] = rng.randint(sampler.min, sampler.max)
        elif isinstance(sampler, FloatSampler):
            drawn[name] = rng.uniform(sampler.min, sampler.max)
        else:
            choices = (seed_values or {}).get(sampler.field)
            if not choices:
                raise KeyError(sampler.field)
            drawn[name] = choices[rng.randrange(len(choices))]
    return drawn


def preview_variables(
    variables: Mapping[str, Any], seeds: Sequence[Mapping[str, Any]]
) -> list[dict[str, Scalar]]:
    """The draws of a preview's records (record ``k``: the ``k``-th seed given).

    A seed-valued sampler draws from the values the preview's own seeds have.

    Raises:
        ValueError: a sampled field has no value, or one that is not a scalar,
            in the preview's seeds (the message names it).
    """
    if not variables:
        return [{} for _ in seeds]
    fields = seed_fields(variables)
    values = SeedProfile.build(seeds, fields, None).values if fields else {}
    return [draw_variables(variables, "preview", k, values) for k in range(len(seeds))]


def probe_variables(variables: Mapping[str, Any]) -> dict[str, Scalar]:
    """A value of each variable's kind, for rendering a template before any seed is known."""
    probe: dict[str, Scalar] = {}
    for name, sampler in variables.items():
        if isinstance(sampler, CategorySampler):
            probe[name] = sampler.values[0]
        elif isinstance(sampler, IntSampler | FloatSampler):
            probe[name] = sampler.min
        else:
            probe[name] = "probe"
    return probe


# ------------------------------------------------------------------ seed order


def permute(position: int, size: int, key: str) -> int:
    """A bijection of ``range(size)`` chosen by ``key``: where ``position`` goes.

    A four-round Feistel network on the smallest even power of two that holds
    ``size``, walked until it lands inside the range (cycle walking), so no
    permutation of ``size`` entries is ever built: O(1) memory whatever the
    number of seeds.
    """
    if not 0 <= position < size:
        raise ValueError(f"position {position} is outside 0..{size - 1}")
    if size == 1:
        return 0
    half = max(1, ((size - 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    keys = [
        int.from_bytes(hashlib.blake2b(f"{key}/{r}".encode(), digest_size=8).digest(), "big")
        for r in range(4)
    ]
    value = position
    while True:
        left, right = value >> half, value & mask
        for round_key in keys:
            mixed = hashlib.blake2b(
                right.to_bytes(8, "big"), digest_size=8, key=round_key.to_bytes(8, "big")
            ).digest()
            left, right = right, left ^ (int.from_bytes(mixed, "big") & mask)
        value = (left << half) | right
        if value < size:
            return value


class SeedProfile:
    """What the samplers need of a seed file: distinct values of fields, records per value.

    Built in one pass (``build``); values keep the order they first appear in
    the file, so the profile of a file is always the same.
    """

    def __init__(
        self, values: dict[str, list[Scalar]], strata: list[list[int]] | None = None
    ) -> None:
        self.values = values
        self.strata = strata

    @classmethod
    def build(
        cls, records: Iterable[Mapping[str, Any]], fields: Sequence[str], stratify: str | None
    ) -> SeedProfile:
        """Read every record once; ValueError naming the field when it cannot be sampled."""
        seen: dict[str, dict[Any, None]] = {f: {} for f in fields}
        groups: dict[Any, list[int]] = {}
        for position, record in enumerate(records):
            for name in fields:
                value = field_value(record, name)
                if value is None:
                    continue
                if not isinstance(value, str | int | float | bool):
                    raise ValueError(
                        f"seed field {name!r} of record {position} is not a string, number or "
                        "boolean, so it cannot be sampled"
                    )
                distinct = seen[name]
                if value not in distinct:
                    if len(distinct) >= MAX_DISTINCT_SEED_VALUES:
                        raise ValueError(
                            f"seed field {name!r} has more than {MAX_DISTINCT_SEED_VALUES} "
                            "distinct values"
                        )
                    distinct[value] = None
                if name == stratify:
                    groups.setdefault(value, []).append(position)
        for name in fields:
            if not seen[name]:
                raise ValueError(f"no seed record has a value in field {name!r}")
        values = {name: list(distinct) for name, distinct in seen.items()}
        return cls(values, list(groups.values()) if stratify is not None else None)


def field_value(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a record; None where it has none."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def seed_position(
    sampling: SeedSampling,
    job_id: str,
    index: int,
    seed_count: int,
    profile: SeedProfile | None = None,
) -> int:
    """Which seed record (0-based) record ``index`` draws under ``sampling``.

    Raises:
        ValueError: stratified sampling without a profile that has the strata.
    """
    if sampling == "uniform":
        return seed_index(job_id, index, seed_count)
    if sampling == "shuffle":
        epoch, offset = divmod(index, seed_count)
        return permute(offset, seed_count, f"{job_id}/shuffle/{epoch}")
    if profile is None or profile.strata is None:
        raise ValueError("stratified seed sampling needs the seed file's strata")
    strata = profile.strata
    turn, slot = divmod(index, len(strata))
    members = strata[permute(slot, len(strata), f"{job_id}/strata/{turn}")]
    epoch, offset = divmod(turn, len(members))
    return members[permute(offset, len(members), f"{job_id}/stratum/{members[0]}/{epoch}")]
