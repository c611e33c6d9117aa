"""Each setting has one owner and one prefix; a variable of a moved setting is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from palette.accounting.settings import AccountingSettings
from palette.common.settings import CommonSettings
from palette.gateway.settings import GatewaySettings
from palette.generator.settings import GeneratorSettings
from palette.scheduler.settings import SchedulerSettings

pytestmark = pytest.mark.unit

SERVICES: list[type[CommonSettings]] = [
    AccountingSettings,
    GatewaySettings,
    GeneratorSettings,
    SchedulerSettings,
]


class TestOneOwner:
    def test_the_scheduler_alone_sets_the_partition_size(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PALETTE_SCHEDULER_PARTITION_SIZE", "9")
        assert SchedulerSettings().partition_size == 9
        owners = [cls for cls in SERVICES if any("partition" in f for f in cls.model_fields)]
        assert owners == [SchedulerSettings]

    def test_the_generator_alone_sets_its_part_size(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PALETTE_GENERATOR_PART_SIZE", "7")
        assert GeneratorSettings().part_size == 7
        owners = [cls for cls in SERVICES if "part_size" in cls.model_fields]
        assert owners == [GeneratorSettings]


class TestRetiredVariables:
    @pytest.mark.parametrize("settings", SERVICES)
    @pytest.mark.parametrize(
        ("name", "instead"),
        [
            ("PALETTE_GATEWAY_DEFAULT_PARTITION_SIZE", "PALETTE_SCHEDULER_PARTITION_SIZE"),
            ("PALETTE_SCHEDULER_PART_SIZE", "PALETTE_GENERATOR_PART_SIZE"),
        ],
    )
    def test_is_refused_with_the_variable_to_set_instead(
        self,
        monkeypatch: pytest.MonkeyPatch,
        settings: type[CommonSettings],
        name: str,
        instead: str,
    ) -> None:
        monkeypatch.setenv(name, "10")
        with pytest.raises(ValidationError, match=f"{name} is no longer read: set {instead}"):
            settings()
