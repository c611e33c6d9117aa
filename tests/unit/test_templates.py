import contextlib
import pickle
import random
import signal
import time
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from palette.common.seeds import missing_fields
from palette.common.templates import (
    RenderLimitError,
    RenderTimeoutError,
    Step,
    TemplateError,
    TemplateSpec,
    analyse,
    render,
    renders_the_same,
    step_context,
)

pytestmark = pytest.mark.unit
M = "amazon.nova-micro-v1:0"


def spec(*prompts: str) -> TemplateSpec:
    return TemplateSpec(
        steps=tuple(Step(id=f"s{i}", model=M, prompt=p) for i, p in enumerate(prompts))
    )


class TestTemplateValidation:
    def test_extracts_seed_fields_as_dotted_paths(self) -> None:
        t = spec("About {{ author.name }} on {{ topic }}", "{{ steps.s0.output }} {{ author.age }}")
        assert analyse(t) == ["author.age", "author.name", "topic"]

    def test_loop_variables_are_not_requirements(self) -> None:
        assert analyse(spec("{% for t in tags %}{{ t.label }}{% endfor %}")) == ["tags"]

    def test_duplicate_step_id_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="duplicate step id"):
            TemplateSpec(
                steps=(Step(id="a", model=M, prompt="x"), Step(id="a", model=M, prompt="y"))
            )

    def test_syntax_error_names_the_step_field_and_line(self) -> None:
        with pytest.raises(
            TemplateError, match=r"steps\[1\]\.prompt: template syntax error on line 2"
        ):
            analyse(spec("fine", "line one\n{{ broken "))

    def test_reference_to_a_later_step_is_refused(self) -> None:
        with pytest.raises(TemplateError, match="not the output of an earlier step"):
            analyse(spec("{{ steps.s1.output }}", "x"))

    def test_more_than_ten_steps_is_refused(self) -> None:
        with pytest.raises(ValidationError):
            spec(*["x"] * 11)

    def test_deep_nesting_is_refused(self) -> None:
        with pytest.raises(TemplateError, match="nesting"):
            analyse(spec("{{ " + "(" * 200 + "1" + ")" * 200 + " }}"))


class TestRendering:
    def test_step_sees_seed_fields_and_earlier_outputs(self) -> None:
        context = step_context({"topic": "tea"}, {"s0": "draft"})
        assert render("{{ topic }}: {{ steps.s0.output }}", context) == "tea: draft"

    def test_missing_variable_names_it(self) -> None:
        with pytest.raises(TemplateError, match="'author' is undefined"):
            render("{{ author }}", {})

    @pytest.mark.parametrize(
        "source",
        [
            "{{ ''.__class__.__mro__ }}",
            "{{ cycler.__init__.__globals__ }}",
            "{{ self.__init__.__globals__ }}",
            "{{ ().__class__.__base__.__subclasses__() }}",
        ],
    )
    def test_template_injection_is_blocked(self, source: str) -> None:
        with pytest.raises(TemplateError, match=r"not allowed in the sandbox|undefined"):
            render(source, {})

    def test_huge_repetition_is_refused(self) -> None:
        with pytest.raises(TemplateError, match="too large"):
            render("{{ 'a' * 10**9 }}", {})

    def test_huge_range_is_refused(self) -> None:
        with pytest.raises(TemplateError):
            render("{% for i in range(10**9) %}{% endfor %}", {})

    def test_slow_render_hits_the_time_limit(self) -> None:
        slow = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
        with pytest.raises(RenderTimeoutError, match=r"^steps\[1\]\.prompt: .* longer than 0\.2s"):
            render(slow, {}, field="steps[1].prompt", seconds=0.2)

    @pytest.mark.parametrize("caught", [Exception, BaseException], ids=["error", "anything"])
    def test_an_alarm_caught_inside_the_render_does_not_lift_the_time_limit(
        self, caught: type[BaseException]
    ) -> None:
        # A filter that catches errors, or Python dropping an exception raised
        # in a weakref callback: the first alarm lands there; the render (about
        # 2 s of loops) is cut short all the same.
        def catching() -> str:
            with contextlib.suppress(caught):
                time.sleep(0.5)
            return ""

        loops = "{% for i in range(10000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"
        context: dict[str, Callable[[], str]] = {"catching": catching}
        with pytest.raises(RenderTimeoutError, match=r"longer than 0\.1s"):
            render("{{ catching() }}" + loops, context, seconds=0.1)
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)

    def test_a_limit_of_cpu_time_counts_no_pause(self) -> None:
        def paused() -> str:
            time.sleep(0.3)
            return "back"

        assert render("{{ paused() }}", {"paused": paused}, seconds=0.1, cpu=True) == "back"
        with pytest.raises(RenderTimeoutError, match=r"longer than 0\.1s$"):
            render("{{ paused() }}", {"paused": paused}, seconds=0.1)
        loops = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
        with pytest.raises(RenderTimeoutError, match=r"longer than 0\.1s of CPU time"):
            render(loops, {}, seconds=0.1, cpu=True)
        assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)

    def test_the_alarm_handler_stays_between_renders_and_ignores_a_late_alarm(self) -> None:
        previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)
        try:
            render("{{ a }}", {"a": 1}, seconds=0.5)
            handler = signal.getsignal(signal.SIGALRM)
            assert callable(handler)
            handler(signal.SIGALRM, None)  # an alarm after the render: no error
            render("{{ a }}", {"a": 2}, seconds=0.5)
            assert signal.getsignal(signal.SIGALRM) is handler
            assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        finally:
            signal.signal(signal.SIGALRM, previous)

    def test_another_alarm_handler_is_put_back_after_a_render(self) -> None:
        def theirs(_signum: int, _frame: object) -> None:
            return None

        previous = signal.signal(signal.SIGALRM, theirs)
        try:
            slow = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
            with pytest.raises(RenderLimitError, match=r"longer than 0\.1s"):
                render(slow, {}, seconds=0.1)
            assert signal.getsignal(signal.SIGALRM) is theirs
            assert render("{{ a }}", {"a": 3}) == "3"
            assert signal.getsignal(signal.SIGALRM) is theirs
        finally:
            signal.signal(signal.SIGALRM, previous)

    def test_renders_the_same_unless_it_draws_by_chance(self) -> None:
        assert renders_the_same("About {{ topic | upper }} {% for i in range(3) %}{% endfor %}")
        assert not renders_the_same("About {{ topics | random }}")
        assert not renders_the_same("{% set t = [1, 2] | random %}{{ t }}")

    def test_missing_fields_lists_absent_paths(self) -> None:
        record = {"author": {"name": "Ann"}, "topic": "x"}
        assert missing_fields(record, ["author.name", "author.age", "topic", "z"]) == [
            "author.age",
            "z",
        ]


class TestRandomDraws:
    PICK = "{{ xs | random }} {{ xs | random }}"
    XS = {"xs": list(range(1000))}

    def test_a_render_with_a_draws_key_picks_the_same_each_time(self) -> None:
        for record in range(20):
            first = render(self.PICK, self.XS, draws=f"job/{record}")
            assert render(self.PICK, self.XS, draws=f"job/{record}") == first

    def test_other_keys_and_other_fields_pick_otherwise(self) -> None:
        picks = {render(self.PICK, self.XS, draws=f"job/{record}") for record in range(20)}
        assert len(picks) > 10
        prompt = [render(self.PICK, self.XS, field="p", draws=f"job/{i}") for i in range(10)]
        system = [render(self.PICK, self.XS, field="s", draws=f"job/{i}") for i in range(10)]
        assert prompt != system

    def test_without_a_key_the_process_generator_picks(self) -> None:
        state = random.getstate()
        try:
            random.seed(7)
            first = render(self.PICK, self.XS)
            random.seed(7)
            assert render(self.PICK, self.XS) == first
        finally:
            random.setstate(state)

    def test_a_keyed_render_leaves_the_process_generator_alone(self) -> None:
        state = random.getstate()
        render(self.PICK, self.XS, draws="job/1")
        assert random.getstate() == state

    def test_an_empty_sequence_is_an_undefined_value(self) -> None:
        with pytest.raises(TemplateError, match="No random item, sequence was empty"):
            render("{{ ([] | random) ~ 'x' }}", {}, draws="job/1")


class TestErrorsCrossProcesses:
    @pytest.mark.parametrize("kind", [TemplateError, RenderLimitError, RenderTimeoutError])
    def test_an_error_keeps_its_kind_field_and_problem_when_pickled(
        self, kind: type[TemplateError]
    ) -> None:
        copy = pickle.loads(pickle.dumps(kind("steps[1].prompt", "render took longer than 1s")))
        assert type(copy) is kind
        assert (copy.field, copy.problem) == ("steps[1].prompt", "render took longer than 1s")
        assert str(copy) == "steps[1].prompt: render took longer than 1s"


class TestRequirementsIgnoreBuiltins:
    def test_jinja_globals_are_not_seed_fields(self) -> None:
        t = spec("{% for i in range(3) %}{{ dict(a=1) }}{{ name }}{% endfor %}")
        assert analyse(t) == ["name"]
