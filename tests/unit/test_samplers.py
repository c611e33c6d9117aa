"""Template variables and seed sampling: deterministic draws (pure logic)."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import TypeAdapter, ValidationError

from palette.common.samplers import (
    CategorySampler,
    FloatSampler,
    IntSampler,
    Sampler,
    SeedChoiceSampler,
    SeedProfile,
    SeedSampling,
    Stratify,
    draw_variables,
    permute,
    seed_fields,
    seed_position,
)
from palette.common.seeds import seed_index

pytestmark = pytest.mark.unit

SAMPLER = TypeAdapter(Sampler)
SAMPLING = TypeAdapter(SeedSampling)


def variables() -> dict[str, Sampler]:
    return {
        "tone": CategorySampler(type="category", values=["formal", "casual"], weights=[3, 1]),
        "age": IntSampler(type="int", min=18, max=80),
        "temp": FloatSampler(type="float", min=0.5, max=1.5),
        "city": SeedChoiceSampler(type="choice_from_seed", field="place.city"),
    }


def test_a_record_draws_the_same_wherever_and_however_often() -> None:
    seeds = {"place.city": ["Lyon", "Oslo", "Quito"]}
    first = [draw_variables(variables(), "job-1", i, seeds) for i in range(200)]
    again = [draw_variables(variables(), "job-1", i, seeds) for i in range(200)]
    assert first == again
    other_job = [draw_variables(variables(), "job-2", i, seeds) for i in range(200)]
    assert first != other_job


def test_draws_stay_in_their_ranges_and_follow_the_weights() -> None:
    seeds = {"place.city": ["Lyon", "Oslo", "Quito"]}
    draws = [draw_variables(variables(), "job", i, seeds) for i in range(4000)]
    assert {d["age"] for d in draws} <= set(range(18, 81))
    assert min(d["age"] for d in draws) == 18
    assert max(d["age"] for d in draws) == 80
    assert all(0.5 <= d["temp"] <= 1.5 for d in draws)  # type: ignore[operator]
    assert {d["city"] for d in draws} == {"Lyon", "Oslo", "Quito"}
    formal = Counter(d["tone"] for d in draws)["formal"] / len(draws)
    assert 0.70 < formal < 0.80  # weights 3:1


def test_one_variable_does_not_move_the_others() -> None:
    """Adding a variable keeps every other variable's draws (each has its own stream)."""
    seeds = {"place.city": ["Lyon", "Oslo"]}
    base = variables()
    more = {**base, "extra": IntSampler(type="int", min=0, max=9)}
    for i in range(50):
        a, b = draw_variables(base, "j", i, seeds), draw_variables(more, "j", i, seeds)
        assert {k: b[k] for k in a} == a


def test_a_seed_choice_without_values_names_its_field() -> None:
    with pytest.raises(KeyError, match=r"place\.city"):
        draw_variables(variables(), "j", 0, {})


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"type": "category", "values": []}, "at least 1 item"),
        ({"type": "category", "values": ["a", "b"], "weights": [1]}, "weights has 1 entries"),
        ({"type": "category", "values": ["a"], "weights": [0]}, "greater than 0"),
        ({"type": "int", "min": 5, "max": 1}, "min (5) is greater than max (1)"),
        ({"type": "float", "min": 2.0, "max": 1.0}, "is greater than max"),
        ({"type": "choice_from_seed", "field": "a..b"}, "pattern"),
        ({"type": "gaussian"}, "does not match any of the expected tags"),
        ({"type": "int", "min": 1, "max": 2, "step": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_samplers_are_refused_with_the_reason(spec: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SAMPLER.validate_python(spec)
    assert problem in str(caught.value)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100, 1000, 4097])
def test_permute_is_a_bijection(size: int) -> None:
    image = [permute(p, size, "key") for p in range(size)]
    assert sorted(image) == list(range(size))
    if size > 7:
        assert image != list(range(size)), "not shuffled"
        assert image != [permute(p, size, "other") for p in range(size)]


def test_permute_refuses_a_position_outside_the_range() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.9"):
        permute(10, 10, "k")


def test_uniform_is_the_existing_draw() -> None:
    assert [seed_position("uniform", "j", i, 17) for i in range(50)] == [
        seed_index("j", i, 17) for i in range(50)
    ]


def test_shuffle_draws_every_seed_once_per_epoch_in_a_new_order() -> None:
    n = 37
    first = [seed_position("shuffle", "job", i, n) for i in range(n)]
    second = [seed_position("shuffle", "job", i, n) for i in range(n, 2 * n)]
    assert sorted(first) == sorted(second) == list(range(n))
    assert first != second
    assert first == [seed_position("shuffle", "job", i, n) for i in range(n)]


def profile_of(topics: list[str]) -> SeedProfile:
    records = [{"topic": t, "n": i} for i, t in enumerate(topics)]
    return SeedProfile.build(records, ["topic"], "topic")


def test_stratify_balances_the_fields_values() -> None:
    # 10 records of "a", 2 of "b", 1 of "c": uniform draws would be 77 % "a".
    topics = ["a"] * 10 + ["b"] * 2 + ["c"]
    profile = profile_of(topics)
    sampling = SAMPLING.validate_python({"stratify": "topic"})
    assert sampling == Stratify(stratify="topic")
    picks = [seed_position(sampling, "job", i, len(topics), profile) for i in range(300)]
    counts = Counter(topics[p] for p in picks)
    assert counts == {"a": 100, "b": 100, "c": 100}
    # Within a value its records take turns: each "a" record 10 times.
    assert set(Counter(p for p in picks if topics[p] == "a").values()) == {10}
    assert picks == [seed_position(sampling, "job", i, len(topics), profile) for i in range(300)]


def test_stratify_without_strata_is_refused() -> None:
    with pytest.raises(ValueError, match="strata"):
        seed_position(Stratify(stratify="topic"), "j", 0, 5)


def test_profile_keeps_values_in_file_order_and_names_a_bad_field() -> None:
    records = [{"place": {"city": c}} for c in ["Oslo", "Lyon", "Oslo", "Quito"]]
    assert SeedProfile.build(records, ["place.city"], None).values == {
        "place.city": ["Oslo", "Lyon", "Quito"]
    }
    with pytest.raises(ValueError, match=r"no seed record has a value in field 'place\.town'"):
        SeedProfile.build(records, ["place.town"], None)
    with pytest.raises(ValueError, match="'place' of record 0 is not a string"):
        SeedProfile.build(records, ["place"], None)


def test_seed_fields_are_those_sampled_and_stratified() -> None:
    assert seed_fields(variables(), Stratify(stratify="topic")) == ["place.city", "topic"]
    assert seed_fields({}, "shuffle") == []
