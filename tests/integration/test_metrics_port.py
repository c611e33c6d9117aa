"""A service's metrics endpoint: off at port 0, a clear error when its port is taken."""

from __future__ import annotations

import socket

import pytest

from palette.common.metrics import MetricsPortError, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


class TestMetricsPort:
    def test_port_zero_serves_nothing(self) -> None:
        assert serve("scheduler", 0) is False

    def test_a_taken_port_stops_the_service_naming_the_setting(self) -> None:
        with socket.socket() as taken:
            taken.bind(("0.0.0.0", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(MetricsPortError) as error:
                serve("generator", port)
        assert f"PALETTE_GENERATOR_METRICS_PORT={port}" in str(error.value)
        assert "0 for no metrics endpoint" in str(error.value)
