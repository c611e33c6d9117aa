"""The Jinja2 sandbox prompts render in, with limits on what a template may build.

Jinja2's immutable sandbox blocks unsafe attributes and calls. Here every
place where a template makes text or a container larger is also checked
before the value is built: the operators ``*``, ``**``, ``+``, ``%`` and
``~``, string methods and filters that multiply their input (``center``,
``replace``, ``join``, ``indent``, ``format``, ...), every value a ``{{ }}``
prints, and the text a render joins. No single value may exceed
``MAX_RENDER_CHARS`` characters, integers ``MAX_INT_BITS`` bits, and one
render may build at most ``MAX_BUILT_CHARS`` characters in all (a budget that
also bounds the work a loop can do). ``RenderLimitError`` reports a breach;
the caller adds a wall-clock limit (``palette.common.templates.render``).

The ``random`` filter picks as ``palette.common.draws`` says.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from palette.common.draws import random_filter

MAX_RENDER_CHARS = 200_000
MAX_BUILT_CHARS = 8 * MAX_RENDER_CHARS
MAX_INT_BITS = 8_192
_HUGE_NUMBER = re.compile(r"\d{7,}")
"""A width or precision of a million or more in a format string."""


class TemplateError(ValueError):
    """A template that cannot be accepted or rendered; ``field`` names where."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its field and problem (it crosses from a render process)."""
        return (type(self), (self.field, self.problem))


class RenderLimitError(TemplateError):
    """A render exceeded its time or size limit."""


class RenderTimeoutError(RenderLimitError):
    """A render exceeded its wall-clock limit."""


def _limit(problem: str) -> RenderLimitError:
    return RenderLimitError("template", problem)


def text_size(value: Any, limit: int = MAX_RENDER_CHARS) -> int:
    """About how many characters ``value`` takes as text, counted up to just past ``limit``.

    Strings count their length, containers the sum of their items plus one
    each, other values one.
    """
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        total += len(item) if isinstance(item, str) else 1
        if isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, Namespace):
            stack.append(item._Namespace__attrs)
    return total


class _Budget:
    __slots__ = ("left",)

    def __init__(self, chars: int) -> None:
        self.left = chars


_BUDGET: ContextVar[_Budget | None] = ContextVar("palette_render_budget", default=None)


@contextmanager
def build_budget(chars: int = MAX_BUILT_CHARS) -> Iterator[None]:
    """Within the block, the templates rendered may build at most ``chars`` characters."""
    token = _BUDGET.set(_Budget(chars))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def charge(size: int, what: str) -> None:
    """Refuse a value of ``size`` characters above the limit; count it against the budget."""
    if size > MAX_RENDER_CHARS:
        raise _limit(f"{what} builds a value too large (over {MAX_RENDER_CHARS} characters)")
    budget = _BUDGET.get()
    if budget is not None:
        budget.left -= size
        if budget.left < 0:
            raise _limit(f"the template builds more than {MAX_BUILT_CHARS} characters of text")


def _made(value: Any, what: str) -> Any:
    if isinstance(value, str | list | tuple | dict | set | frozenset | Namespace):
        charge(text_size(value), what)
    return value


def _int_bits(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length()
    return None


def _check_binop(operator: str, left: Any, right: Any) -> None:
    lbits, rbits = _int_bits(left), _int_bits(right)
    what = f"the operator {operator}"
    if operator == "**" and lbits is not None and rbits is not None:
        if abs(left) > 1 and right > 0 and lbits * right > MAX_INT_BITS:
            raise _limit(f"a power larger than {MAX_INT_BITS} bits")
    elif operator == "*":
        if lbits is not None and rbits is not None:
            if lbits + rbits > MAX_INT_BITS:
                raise _limit(f"a product larger than {MAX_INT_BITS} bits")
            return
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and _int_bits(count) is not None:
                charge(text_size(seq) * max(count, 0), f"repeating a value ({what})")
    elif operator == "+":
        if isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
            charge(text_size(left) + text_size(right), what)
    elif operator == "%" and isinstance(left, str):
        if _HUGE_NUMBER.search(left):
            raise _limit("a format string with a width or precision of a million or more")
        widths = [a for a in _as_tuple(right) if _int_bits(a) is not None]
        if "*" in left and any(abs(a) > MAX_RENDER_CHARS for a in widths):
            raise _limit("a format width from the arguments above the size limit")
        charge(text_size(left) + text_size(right), what)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_RENDER_CHARS:
        raise _limit(f"{what}: a width of {width} is above {MAX_RENDER_CHARS}")


def _joined_size(items: Iterable[Any], separator: Any) -> int:
    values = list(items)
    return sum(text_size(v) for v in values) + text_size(separator) * max(len(values) - 1, 0)


def _replaced_size(text: Any, old: Any, new: Any) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return text_size(text)
    hits = text.count(old) if old else len(text) + 1
    return len(text) + hits * max(len(new) - len(old), 0)


def _check_str_method(name: str, text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a call of a string method that would build too large a value."""
    what = f"str.{name}"
    first = args[0] if args else None
    if name in {"center", "ljust", "rjust", "zfill"}:
        _check_width(first, what)
    elif name == "expandtabs":
        size = kwargs.get("tabsize", first if first is not None else 8)
        if isinstance(size, int):
            charge(len(text) + text.count("\t") * max(size, 0), what)
    elif name == "replace" and len(args) >= 2:
        charge(_replaced_size(text, args[0], args[1]), what)
    elif name == "join" and args:
        charge(_joined_size(args[0], text), what)


def _width_arg(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, default: Any) -> Any:
    return kwargs.get(name, args[0] if args else default)


def _check_center(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _check_width(_width_arg(args, kwargs, "width", 80), "center")


def _check_replace(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if len(args) >= 2:
        charge(_replaced_size(value, args[0], args[1]), "replace")


def _check_join(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    charge(_joined_size(value, _width_arg(args, kwargs, "d", "")), "join")


def _check_format(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _check_binop("%", value, args or kwargs)


def _check_text(name: str) -> Callable[[Any, tuple[Any, ...], dict[str, Any]], None]:
    def check(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        charge(text_size(value), name)

    return check


def _check_indent(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    width = _width_arg(args, kwargs, "width", 4)
    if isinstance(value, str):
        per_line = len(width) if isinstance(width, str) else width
        if isinstance(per_line, int):
            charge(len(value) + (value.count("\n") + 1) * max(per_line, 0), "indent")


def _check_wordwrap(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    width = kwargs.get("width", args[0] if args else 79)
    wrap = kwargs.get("wrapstring", args[2] if len(args) > 2 else None)
    if isinstance(value, str) and isinstance(width, int) and isinstance(wrap, str):
        charge(len(value) + (len(value) // max(width, 1) + 1) * len(wrap), "wordwrap")


_FILTER_CHECKS: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], None]] = {
    "center": _check_center,
    "indent": _check_indent,
    "replace": _check_replace,
    "join": _check_join,
    "format": _check_format,
    "wordwrap": _check_wordwrap,
    **{name: _check_text(name) for name in ("string", "tojson", "pprint", "sum")},
}


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that checks what it would build (before, where it multiplies) and after."""
    passes = 1 if hasattr(function, "jinja_pass_arg") else 0
    check = _FILTER_CHECKS.get(name)

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if check is not None and len(args) > passes:
            check(args[passes], args[passes + 1 :], kwargs)
        return _made(function(*args, **kwargs), f"the filter {name}")

    return bounded


class _Generator(CodeGenerator):
    """Compiles ``a ~ b`` to a size-checked join (Jinja2 calls ``str_join`` directly)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.joined((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox that refuses to build values past the limits above."""

    intercepted_binops = frozenset(["*", "**", "+", "%"])
    code_generator_class = _Generator

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=self._printed, **options)
        self.globals.pop("lipsum", None)  # paragraphs of filler on demand: nothing a prompt needs
        self.filters["random"] = random_filter
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    @staticmethod
    def _printed(value: Any) -> Any:
        return _made(value, "a printed value")

    @staticmethod
    def concat(chunks: Iterable[str]) -> str:
        """Join rendered text, stopping as soon as it is longer than the limit."""
        parts: list[str] = []
        total = 0
        for chunk in chunks:
            total += len(chunk)
            if total > MAX_RENDER_CHARS:
                raise _limit(f"rendered text longer than {MAX_RENDER_CHARS} characters")
            parts.append(chunk)
        return "".join(parts)

    def joined(self, values: tuple[Any, ...]) -> str:
        """``a ~ b ~ ...``: the values as text, joined, within the limits."""
        charge(sum(text_size(v) for v in values), "the operator ~")
        return "".join(str(v) for v in values)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """An intercepted operator, checked before it builds its result."""
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """A call from the template: string methods are checked first, every result after."""
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(getattr(obj, "__name__", ""), owner, args, kwargs)
        result = super().call(context, obj, *args, **kwargs)
        return _made(result, f"calling {getattr(obj, '__name__', 'a function')}")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` in the sandbox, refusing huge widths and results."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__

        @functools.wraps(wrapped)
        def bounded(*args: Any, **kwargs: Any) -> str:
            if _HUGE_NUMBER.search(template):
                raise _limit("a format string with a width or precision of a million or more")
            charge(text_size(template) + text_size(args) + text_size(kwargs), "str.format")
            text: str = _made(wrapped(*args, **kwargs), "str.format")
            return text

        return bounded
