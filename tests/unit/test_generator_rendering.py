import time

import pytest

from palette.common.templates import RenderTimeoutError, TemplateError
from palette.generator.rendering import Renderer, Routes

pytestmark = pytest.mark.unit

FOREVER = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
CUT_SHORT = float("inf")


class TestRoutes:
    def test_a_template_renders_on_the_loop_until_a_render_of_it_overruns(self) -> None:
        routes = Routes(0.005)
        assert routes.on_loop("slow", main_thread=True)
        routes.took("slow", CUT_SHORT)
        assert not routes.on_loop("slow", main_thread=True)
        assert routes.on_loop("other", main_thread=True)

    def test_a_slow_template_comes_back_to_the_loop_after_a_render_within_its_limit(
        self,
    ) -> None:
        routes = Routes(0.005)
        routes.took("t", CUT_SHORT)
        routes.took("t", 0.004)
        assert routes.on_loop("t", main_thread=True)
        routes.took("t", 0.006)
        assert not routes.on_loop("t", main_thread=True)

    def test_nothing_renders_on_the_loop_off_the_main_thread_or_with_no_loop_time(self) -> None:
        assert not Routes(0.005).on_loop("t", main_thread=False)
        assert not Routes(0.0).on_loop("t", main_thread=True)

    def test_only_the_latest_slow_templates_are_remembered(self) -> None:
        routes = Routes(0.005, capacity=2)
        for source in ("a", "b", "c"):
            routes.took(source, 1.0)
        assert routes.on_loop("a", main_thread=True)
        assert not routes.on_loop("b", main_thread=True)
        assert not routes.on_loop("c", main_thread=True)


class TestRendererOnTheLoop:
    async def test_a_fast_render_stays_on_the_loop_and_starts_no_process(self) -> None:
        renderer = Renderer(1.0, 0.5, 1)
        text = await renderer.render("{{ a }}-{{ xs | random }}", {"a": 1, "xs": [7]}, field="f")
        assert text == "1-7"
        assert not renderer.started

    async def test_a_render_paused_without_using_cpu_stays_on_the_loop(self) -> None:
        # As when the machine's scheduler runs other programs: wall time, no CPU.
        def paused() -> str:
            time.sleep(0.05)
            return "back"

        renderer = Renderer(1.0, 0.005, 1)
        assert await renderer.render("{{ paused() }}", {"paused": paused}, field="f") == "back"
        assert not renderer.started

    async def test_an_error_on_the_loop_names_the_field(self) -> None:
        renderer = Renderer(1.0, 0.5, 1)
        with pytest.raises(TemplateError, match=r"steps\[2\]\.system: undefined variable"):
            await renderer.render("{{ nope }}", {}, field="steps[2].system")
        assert not renderer.started

    async def test_with_the_loop_limit_at_the_full_limit_a_slow_render_fails_on_the_loop(
        self,
    ) -> None:
        renderer = Renderer(0.1, 5.0, 1)
        with pytest.raises(RenderTimeoutError, match=r"^steps\[1\]\.prompt: .* longer than 0\.1s"):
            await renderer.render(FOREVER, {}, field="steps[1].prompt")
        assert not renderer.started
