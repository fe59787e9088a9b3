"""A small, strict interpreter for the CUDA C that gpuimg's kernels are written in (for the CuPy double).

:class:`Program` parses an ``ElementwiseKernel`` operation and runs it on numpy arrays, element-wise:

* statements: ``type name = expression;``, ``type name;``, ``name = expression;`` and one inline-PTX form,
  ``asm("cvt... %0, %1;" : "=d"(name) : "f"(expression));``;
* expressions: casts, ``| & << >>`` with C's integer promotions, integer literals, parentheses and the
  CUDA intrinsics ``__dmul_rn __dadd_rn __fmul_rn __fadd_rn __uint_as_float __longlong_as_double``.

Every conversion must be written as a cast (no implicit conversions), shifts must stay in range, a
variable must be assigned before it is read.

Single precision follows CuPy, which always compiles with ``-ftz=true`` (``cupy/cuda/compiler.py``;
``cupy.nextafter`` documents the consequence): a float32 subnormal consumed or produced by a
single-precision operation is flushed to zero of the same sign. That covers a C cast from float32
(``(double)x``) or to float32 (``(float)w``) and ``__fmul_rn``/``__fadd_rn``. Moves and bit
reinterpretations (``__uint_as_float``, assigning a float to a float) keep the bits, and PTX ``cvt``
written inline flushes only with an explicit ``.ftz``, as the PTX ISA specifies.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

_CTYPES = {
    "signed char": np.dtype(np.int8),
    "unsigned char": np.dtype(np.uint8),
    "short": np.dtype(np.int16),
    "unsigned short": np.dtype(np.uint16),
    "int": np.dtype(np.int32),
    "unsigned int": np.dtype(np.uint32),
    "unsigned": np.dtype(np.uint32),
    "long long": np.dtype(np.int64),
    "unsigned long long": np.dtype(np.uint64),
    "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
}
_TYPE_WORDS = {"signed", "unsigned", "char", "short", "int", "long", "float", "double"}
_F4, _F8 = np.dtype(np.float32), np.dtype(np.float64)
_TINY_F4 = np.finfo(np.float32).tiny


def flush_subnormals(values: np.ndarray) -> np.ndarray:
    """``-ftz=true``: float32 subnormals become zero of the same sign; other dtypes pass through."""
    if values.dtype != _F4:
        return values
    tiny = np.abs(values) < _TINY_F4
    return np.where(tiny, np.copysign(np.float32(0), values), values).astype(_F4)


def ftz_cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A C conversion compiled with ``-ftz=true``: float32 sources and results are flushed."""
    dtype = np.dtype(dtype)
    if values.dtype == dtype:
        return values
    with np.errstate(all="ignore"):  # a GPU converts without warnings
        return flush_subnormals(flush_subnormals(values).astype(dtype))


def _single(function: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """A float32 intrinsic under ``-ftz=true``: subnormal operands and results flushed."""
    return lambda *args: flush_subnormals(function(*(flush_subnormals(a) for a in args)))


_INTRINSICS: dict[str, tuple[tuple[np.dtype, ...], Callable[..., np.ndarray]]] = {
    "__dmul_rn": ((_F8, _F8), np.multiply),
    "__dadd_rn": ((_F8, _F8), np.add),
    "__fmul_rn": ((_F4, _F4), _single(np.multiply)),
    "__fadd_rn": ((_F4, _F4), _single(np.add)),
    "__uint_as_float": ((np.dtype(np.uint32),), lambda a: a.view(_F4)),
    "__longlong_as_double": ((np.dtype(np.int64),), lambda a: a.view(_F8)),
}
# PTX register constraints of inline asm, and the float conversions the double understands.
_REGISTERS = {"f": _F4, "d": _F8}
_PTX_TYPES = {"f32": _F4, "f64": _F8}
_CVT = re.compile(r"cvt(?P<rn>\.rn)?(?P<ftz>\.ftz)?\.(?P<d>f32|f64)\.(?P<a>f32|f64) %0, %1;")
_TOKEN = re.compile(
    r'\s*(?:(?P<num>0[xX][0-9a-fA-F]+|\d+)(?P<suffix>[uUlL]*)|"(?P<str>[^"\\]*)"'
    r"|(?P<name>[A-Za-z_]\w*)|(?P<op><<|>>|[()=;,|&:]))"
)


class _String(str):
    """A string literal token (asm templates and constraints)."""


def _tokenize(source: str) -> list[object]:
    tokens: list[object] = []
    position = 0
    while source[position:].strip():
        match = _TOKEN.match(source, position)
        if match is None:
            raise SyntaxError(f"the double cannot parse {source[position : position + 30]!r}")
        if match["num"]:
            tokens.append((int(match["num"], 0), match["suffix"].lower()))
        elif match["str"] is not None:
            tokens.append(_String(match["str"]))
        else:
            tokens.append(match["name"] or match["op"])
        position = match.end()
    return tokens


def _promote(dtype: np.dtype) -> np.dtype:
    """C's integer promotion: anything narrower than int becomes int."""
    return np.dtype(np.int32) if dtype.kind in "iu" and dtype.itemsize < 4 else dtype


def _common(a: np.dtype, b: np.dtype) -> np.dtype:
    """C's usual arithmetic conversions for two integer operands."""
    a, b = _promote(a), _promote(b)
    if a.kind not in "iu" or b.kind not in "iu":
        raise TypeError(f"the double's bitwise operators take integers, got {a} and {b}")
    if a == b:
        return a
    if a.kind == b.kind:
        return max(a, b, key=lambda t: t.itemsize)
    unsigned, signed = (a, b) if a.kind == "u" else (b, a)
    return unsigned if unsigned.itemsize >= signed.itemsize else signed


def _literal(value: int, suffix: str) -> np.ndarray:
    wide = "ll" in suffix or value >= 1 << 32 or ("u" not in suffix and value >= 1 << 31)
    unsigned = "u" in suffix or (not wide and value >= 1 << 31)
    return np.asarray(value, dtype=f"{'u' if unsigned else 'i'}{8 if wide else 4}")


def _shift(op: str, left: np.ndarray, count: np.ndarray) -> np.ndarray:
    left = left.astype(_promote(left.dtype))
    width = 8 * left.dtype.itemsize
    if count.dtype.kind not in "iu" or np.any(count < 0) or np.any(count >= width):
        raise ValueError(f"shift of a {width}-bit value by {count} is undefined behaviour")
    if op == "<<" and left.dtype.kind == "i" and np.any(left < 0):
        raise ValueError("left shift of a negative value is undefined behaviour")
    count = count.astype(left.dtype)
    return np.left_shift(left, count) if op == "<<" else np.right_shift(left, count)


def _cvt(instruction: str, out: np.dtype, source: np.dtype) -> Callable[[np.ndarray], np.ndarray]:
    """The conversion one inline PTX ``cvt`` performs, checked against its operands' types."""
    match = _CVT.fullmatch(instruction)
    if match is None:
        raise NotImplementedError(f"the double does not implement the PTX {instruction!r}")
    target, operand = _PTX_TYPES[match["d"]], _PTX_TYPES[match["a"]]
    if (target, operand) != (out, source):
        raise TypeError(
            f"{instruction!r} converts {operand} to {target}, used for {source} to {out}"
        )
    if target == operand or bool(match["rn"]) != (target.itemsize < operand.itemsize):
        raise SyntaxError(f"{instruction!r}: PTX needs a rounding modifier exactly when narrowing")
    flush = flush_subnormals if match["ftz"] else (lambda values: values)
    return lambda values: flush(flush(values).astype(target))


class Program:
    """A parsed kernel body: its statements, run by :meth:`evaluate`."""

    def __init__(self, source: str) -> None:
        self._tokens = _tokenize(source)
        self._position = 0
        self.statements: list[tuple] = []
        while self._position < len(self._tokens):
            self.statements.append(self._statement())

    def _statement(self) -> tuple:
        if self._peek() == "asm":
            return self._asm()
        dtype = self._type() if self._peek() in _TYPE_WORDS else None
        name = self._next()
        if dtype is not None and self._peek() == ";":
            self._next()
            return ("declare", dtype, name)
        self._expect("=")
        statement = ("assign", dtype, name, self._expression())
        self._expect(";")
        return statement

    def _asm(self) -> tuple:
        self._next()
        self._expect("(")
        instruction = self._string()
        self._expect(":")
        out_constraint = self._string()
        self._expect("(")
        name = self._next()
        self._expect(")")
        self._expect(":")
        in_constraint = self._string()
        self._expect("(")
        operand = self._expression()
        for token in ")", ")", ";":
            self._expect(token)
        if out_constraint[:1] != "=" or out_constraint[1:] not in _REGISTERS:
            raise SyntaxError(
                f"the double expects an output constraint '=f' or '=d': {out_constraint!r}"
            )
        if in_constraint not in _REGISTERS:
            raise SyntaxError(
                f"the double expects an input constraint 'f' or 'd': {in_constraint!r}"
            )
        out, source = _REGISTERS[out_constraint[1:]], _REGISTERS[in_constraint]
        return ("asm", _cvt(instruction, out, source), name, out, source, operand)

    def _string(self) -> str:
        token = self._next()
        if not isinstance(token, _String):
            raise SyntaxError(f"the double expected a string literal, found {token!r}")
        return str(token)

    def _peek(self) -> object:
        return self._tokens[self._position] if self._position < len(self._tokens) else None

    def _next(self) -> object:
        token = self._peek()
        self._position += 1
        return token

    def _expect(self, token: str) -> None:
        found = self._next()
        if found != token or isinstance(found, _String):
            raise SyntaxError(f"the double expected {token!r}, found {found!r}")

    def _type(self) -> np.dtype:
        words = []
        while self._peek() in _TYPE_WORDS:
            words.append(self._next())
        name = " ".join(words)
        if name not in _CTYPES:
            raise SyntaxError(f"the double does not know the C type {name!r}")
        return _CTYPES[name]

    def _expression(self) -> tuple:
        return self._binary(("|", "&", ("<<", ">>")))

    def _binary(self, levels: tuple) -> tuple:
        if not levels:
            return self._unary()
        ops = levels[0] if isinstance(levels[0], tuple) else (levels[0],)
        node = self._binary(levels[1:])
        while self._peek() in ops:
            node = ("binary", self._next(), node, self._binary(levels[1:]))
        return node

    def _unary(self) -> tuple:
        token = self._next()
        if token == "(":
            if self._peek() in _TYPE_WORDS:
                dtype = self._type()
                self._expect(")")
                return ("cast", dtype, self._unary())
            node = self._expression()
            self._expect(")")
            return node
        if isinstance(token, tuple):
            return ("literal", _literal(*token))
        if self._peek() == "(":
            self._next()
            args = [self._expression()]
            while self._peek() == ",":
                self._next()
                args.append(self._expression())
            self._expect(")")
            return ("call", token, args)
        return ("name", token)

    def evaluate(self, names: dict[str, np.ndarray], outputs: set[str]) -> dict[str, np.ndarray]:
        """Run the statements; ``names`` holds the parameters and receives the locals."""
        types = {name: names[name].dtype for name in names}
        writable = set(outputs)
        for statement in self.statements:
            kind, name = statement[0], statement[2]
            if kind == "declare":
                types[name] = statement[1]
                writable.add(name)
                continue
            if kind == "asm":
                _, convert, _, _, source, operand = statement
                value = self._evaluate(operand, names)
                if value.dtype != source:
                    raise TypeError(f"asm operand of {value.dtype} bound to a {source} register")
                value = convert(value)
            else:
                value, declared = self._evaluate(statement[3], names), statement[1]
                if declared is not None:
                    types[name] = declared
                    writable.add(name)
            if name not in writable:
                raise SyntaxError(f"{name!r} is an input or undeclared; it cannot be assigned")
            if value.dtype != types[name]:
                raise TypeError(
                    f"implicit conversion from {value.dtype} to {types[name]} in {name!r}"
                )
            names[name] = value
        return names

    def _evaluate(self, node: tuple, names: dict[str, np.ndarray]) -> np.ndarray:
        kind = node[0]
        if kind == "literal":
            return node[1]
        if kind == "name":
            if node[1] not in names:
                raise NameError(f"{node[1]!r} is read before it is assigned")
            return names[node[1]]
        if kind == "cast":
            return ftz_cast(self._evaluate(node[2], names), node[1])
        if kind == "call":
            if node[1] not in _INTRINSICS:
                raise NameError(f"the double does not implement {node[1]}")
            types, function = _INTRINSICS[node[1]]
            args = [self._evaluate(arg, names) for arg in node[2]]
            if tuple(arg.dtype for arg in args) != types:
                raise TypeError(f"{node[1]} takes {types}, got {[arg.dtype for arg in args]}")
            with np.errstate(all="ignore"):
                return np.asarray(function(*args))
        left, right = self._evaluate(node[2], names), self._evaluate(node[3], names)
        if node[1] in ("<<", ">>"):
            return _shift(node[1], left, right)
        common = _common(left.dtype, right.dtype)
        function = np.bitwise_or if node[1] == "|" else np.bitwise_and
        return function(left.astype(common), right.astype(common))
