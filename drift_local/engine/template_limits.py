"""A Jinja sandbox that also bounds what a template may cost: time, size and depth.

jinja2's sandbox stops escapes, not exhaustion: `{{ 'x' * 3000000000 }}` allocates gigabytes
(even while the template is compiled: Jinja folds constants), two nested `range(100000)`
loops never end, and a self-recursive macro overflows the stack. Here:

- size: every operation that can multiply its input (`*`, `**`, `+`, `%`, `~`, padding and
  width arguments, `replace`, `join`, ...) is checked *before* it runs, so no single step can
  build a string or list over MAX_ITEMS; intercepted operators are also never folded at
  compile time. Values shown with `{{ }}` are measured before they become text, which
  catches lists that nest one shared list many times over (exponential when printed).
- time: while a template renders, a trace function watches the template's own Python code
  (every loop iteration and macro call runs a line of it) and stops it past TIME_LIMIT_S.
  Only that thread is traced, and only during the render.
- depth: nested macro calls are capped at MAX_DEPTH.

What the time limit cannot cut short is one C-level step between two lines of the template;
the size bounds keep each such step (sorting, comparing, joining at most MAX_ITEMS items) short.
"""

from __future__ import annotations

import itertools
import re
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

from jinja2 import Template, nodes
from jinja2.compiler import CodeGenerator, Frame, operators, optimizeconst
from jinja2.runtime import Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_ITEMS = 4_000_000  # characters in one string, or items in one list, a template may build
MAX_OUTPUT = 16_000_000  # characters a whole render may produce
MAX_WIDTH = 100_000  # padding, width and count arguments
MAX_INT_BITS = 20_000  # integers a template computes (a 6,000-digit number)
MAX_DEPTH = 64  # nested macro calls
MAX_SOURCE = 1_000_000  # characters of template source
TIME_LIMIT_S = 1.0

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d*)(?:\.(\*|\d*))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_NESTED_SPEC = re.compile(r"\{[^{}]*:[^{}]*\{")


class TemplateLimit(BaseException):
    """The template went past one of the bounds above.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` in code the
    template calls can swallow it and carry on.
    """


def _too_big(what: str, size: float, limit: int = MAX_ITEMS) -> None:
    if size > limit:
        raise TemplateLimit(f"{what} of {size:,.0f} is over the limit of {limit:,}")


def rendered_size(value: Any, budget: int = MAX_ITEMS) -> int:
    """About how many characters str(value) has, without building that text.

    A list holding one shared list 40 levels deep costs nothing to build and 2**40 characters
    to print: each container is measured once, however often it is shared. Counting stops
    past `budget`.
    """
    sizes: dict[int, int] = {}

    def size(item: Any) -> int:
        if isinstance(item, str):
            return len(item)
        if isinstance(item, int):
            return item.bit_length() // 3 + 1
        if isinstance(item, dict):
            children: Any = itertools.chain(item.keys(), item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = item
        else:
            return 24  # floats, None, undefined: short
        if id(item) not in sizes:
            total = 2 + 2 * len(item)
            for child in children:
                total += size(child)
                if total > budget:
                    break
            sizes[id(item)] = total
        return sizes[id(item)]

    try:
        return size(value)
    except RecursionError:  # nested thousands deep: far too big to show
        return budget + 1


def _length(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 0


def _check_int(value: Any) -> None:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimit(f"an integer of {value.bit_length():,} bits is over the limit of {MAX_INT_BITS:,}")


def _checked_result(value: Any) -> Any:
    _too_big("a value built", _length(value))
    _check_int(value)
    return value


def _listed(value: Any) -> Any:
    """An iterator as a list (at most MAX_ITEMS items), so that its size can be checked first."""
    if not isinstance(value, Iterator):
        return value
    items = list(itertools.islice(value, MAX_ITEMS + 1))
    _too_big("a sequence", len(items))
    return items


def _check_format_string(fmt: str, args: Any) -> None:
    """`%` and str.format pad to the widths they are given: a width is a size."""
    widths = [w for m in _PERCENT_SPEC.finditer(fmt) for w in m.groups() if w and w != "*"]
    widths += [w for spec in _BRACE_SPEC.findall(fmt) for w in re.findall(r"\d+", spec)]
    for width in widths:
        _too_big("a format width", int(width[:7]), MAX_WIDTH)
    if "*" in fmt or _NESTED_SPEC.search(fmt):  # widths taken from the arguments
        for arg in args if isinstance(args, (tuple, list)) else (args,):
            if isinstance(arg, int):
                _too_big("a format width", abs(arg), MAX_WIDTH)
    _too_big("a formatted string", len(fmt) + rendered_size(args))


def _check_binop(op: str, left: Any, right: Any) -> None:
    if op == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(count, int) and _length(seq):
                _too_big("a repeated sequence", _length(seq) * max(count, 0))
        if isinstance(left, int) and isinstance(right, int):
            _too_big("a product", left.bit_length() + right.bit_length(), MAX_INT_BITS)
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _too_big("a power", left.bit_length() * right, MAX_INT_BITS)
    elif op == "+":
        _too_big("a sum of sequences", _length(left) + _length(right))
    elif op == "%" and isinstance(left, str):
        _check_format_string(left, right)


def _first_int(args: tuple, kwargs: dict, position: int, name: str, default: int = 0) -> int:
    value = kwargs.get(name, args[position] if len(args) > position else default)
    return value if isinstance(value, int) else default


def _check_filter(name: str, args: tuple, kwargs: dict) -> None:
    """Filters that can multiply their input, checked from their arguments (jinja2's signatures)."""
    value = args[0] if args else None
    size = rendered_size(value)
    _too_big(f"the input of the '{name}' filter", size)
    if name == "center":
        _too_big("a centre width", _first_int(args, kwargs, 1, "width", 80), MAX_WIDTH)
    elif name == "indent":
        width = kwargs.get("width", args[1] if len(args) > 1 else 4)
        per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        _too_big("an indentation width", per_line, MAX_WIDTH)
        _too_big("an indented text", size + per_line * (str(value).count("\n") + 1))
    elif name == "wordwrap":
        width = max(_first_int(args, kwargs, 1, "width", 79), 1)
        wrap = kwargs.get("wrapstring", args[3] if len(args) > 3 else "\n")
        _too_big("a wrapped text", size + size // width * len(str(wrap or "\n")))
    elif name == "replace" and len(args) >= 3:
        _check_replace(str(value), args[1], args[2])
    elif name == "join" and isinstance(value, (list, tuple)):
        _check_join(str(kwargs.get("d", args[1] if len(args) > 1 else "")), value)
    elif name == "format" and isinstance(value, str):
        _check_format_string(value, args[1:] or tuple(kwargs.values()))
    elif name in ("batch", "slice"):
        _too_big(f"a '{name}' count", _first_int(args, kwargs, 1, "linecount" if name == "batch" else "slices"), MAX_WIDTH)
    elif name == "truncate":
        _too_big("a truncation", _first_int(args, kwargs, 1, "length", 255), MAX_ITEMS)


def _check_call(func: Any, args: tuple, kwargs: dict) -> None:
    """str methods that can multiply their text, checked from their arguments."""
    target = getattr(func, "__self__", getattr(getattr(func, "__wrapped__", None), "__self__", None))
    if not isinstance(target, str):
        return
    name = getattr(func, "__name__", "")
    if name in ("center", "ljust", "rjust", "zfill"):
        _too_big("a padding width", _first_int(args, kwargs, 0, "width"))
    elif name == "expandtabs":
        _too_big("expanded tabs", len(target) + target.count("\t") * _first_int(args, kwargs, 0, "tabsize", 8))
    elif name == "replace" and len(args) >= 2:
        _check_replace(target, args[0], args[1])
    elif name == "join" and args and isinstance(args[0], (list, tuple)):
        _check_join(target, args[0])
    elif name in ("format", "format_map"):
        _check_format_string(target, (*args, *kwargs.values()))
    elif name == "translate" and args and isinstance(args[0], dict):
        _too_big("a translated text", len(target) * max([1, *map(rendered_size, args[0].values())]))


def _check_replace(text: str, old: Any, new: Any) -> None:
    old, new = str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    _too_big("a replaced text", len(text) + hits * len(new))


def _check_join(separator: str, parts: list | tuple) -> None:
    _too_big("a joined text", sum(rendered_size(p) for p in parts) + len(separator) * len(parts))


class _BoundedCodeGenerator(CodeGenerator):
    @optimizeconst
    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        # Comparing two lists that nest shared lists compares every path through them: measure first.
        self.write("(environment.comparable(")
        self.visit(node.expr, frame)
        self.write(")")
        for operand in node.ops:
            self.write(f" {operators[operand.op]} environment.comparable(")
            self.visit(operand.expr, frame)
            self.write(")")
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # `~` joins its operands as text: measure them before joining.
        self.write("environment.checked_concat((")
        for operand in node.nodes:
            self.visit(operand, frame)
            self.write(", ")
        self.write("))")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with the bounds in this module's docstring."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})  # intercepted ones are never folded

    def __init__(self, **options: Any):
        super().__init__(finalize=_checked_output, **options)
        self.globals.pop("lipsum", None)  # lipsum(n) writes n paragraphs
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.tests = {name: _bounded_test(f) for name, f in self.tests.items()}
        self._calls = threading.local()  # macro depth, per rendering thread

    def from_string(self, source: str, *args: Any, **kwargs: Any) -> Template:  # type: ignore[override]
        _too_big("a template source", len(source), MAX_SOURCE)
        return super().from_string(source, *args, **kwargs)

    # -- hooks the sandbox calls ------------------------------------------------------------
    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return _checked_result(self.binop_table[operator](left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if getattr(__obj, "__name__", "") == "join" and args:
            args = (_listed(args[0]), *args[1:])
        _check_call(__obj, args, kwargs)
        if not isinstance(__obj, Macro):
            return _checked_result(super().call(__context, __obj, *args, **kwargs))
        depth = getattr(__self._calls, "depth", 0)
        if depth >= MAX_DEPTH:
            raise TemplateLimit(f"macro calls nested over {MAX_DEPTH} deep")
        __self._calls.depth = depth + 1
        try:
            return super().call(__context, __obj, *args, **kwargs)
        finally:
            __self._calls.depth = depth

    def comparable(self, value: Any) -> Any:
        _too_big("a value compared", rendered_size(value))
        return value

    def checked_concat(self, operands: tuple) -> str:
        _too_big("a joined text", sum(rendered_size(x) for x in operands))
        return "".join(map(str, operands))

    # -- rendering --------------------------------------------------------------------------
    def render(self, template: Template, variables: dict) -> str:
        """The template's text; TemplateLimit past a bound (the template's own errors pass through)."""
        self._calls.depth = 0
        deadline = time.monotonic() + TIME_LIMIT_S
        template_code = template.root_render_func.__code__.co_filename

        def watch_lines(frame: Any, event: str, arg: Any) -> Any:
            if time.monotonic() > deadline:
                raise TemplateLimit(f"rendering took over {TIME_LIMIT_S:g} s")
            return watch_lines

        def watch_calls(frame: Any, event: str, arg: Any) -> Any:
            watch_lines(frame, event, arg)
            return watch_lines if frame.f_code.co_filename == template_code else None

        parts: list[str] = []
        produced = 0
        previous = sys.gettrace()
        sys.settrace(watch_calls)
        try:
            for part in template.generate(**variables):
                produced += len(part)
                _too_big("the rendered text", produced, MAX_OUTPUT)
                parts.append(part)
        finally:
            sys.settrace(previous)
        return "".join(parts)


def _checked_output(value: Any) -> Any:
    _too_big("a value shown", rendered_size(value))
    return value


def _bounded_filter(name: str, f: Callable) -> Callable:
    skip = 1 if getattr(f, "jinja_pass_arg", None) is not None else 0  # context or environment first

    def bounded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip:
            args = (*args[:skip], _listed(args[skip]), *args[skip + 1 :])
        _check_filter(name, args[skip:], kwargs)
        return _checked_result(f(*args, **kwargs))

    bounded.__dict__.update(getattr(f, "__dict__", {}))  # keeps jinja2's pass_context / pass_environment mark
    bounded.__name__ = getattr(f, "__name__", name)
    return bounded


def _bounded_test(f: Callable) -> Callable:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            _too_big("a value tested", rendered_size(value))
        return f(*args, **kwargs)

    bounded.__dict__.update(getattr(f, "__dict__", {}))
    bounded.__name__ = getattr(f, "__name__", "test")
    return bounded
