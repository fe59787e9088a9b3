"""A strict CPU test double of the CuPy subset that ``gpuimg.device`` and ``gpuimg.gpuread`` use.

Install it with ``gpuimg.device.use_backend(cupy_double)``. It follows CuPy's documented behaviour for
that subset and nothing more; where CuPy (or nvcc) would be lenient, the double is strict, so code that
passes on it has spelled out what it means:

* :class:`ndarray` is its own type; ``np.asarray(array)`` raises TypeError as CuPy does. Data leave
  only through ``.get()`` / :func:`asnumpy`, which synchronise the stream they copy on.
* Device memory is counted by :class:`MemoryPool` (``used_bytes``, ``total_bytes``,
  ``free_all_blocks``, ``set_limit``): an array's bytes are freed when its memory is garbage
  collected, and go to the pool's cache until ``free_all_blocks``. Allocating past the limit raises
  ``cuda.memory.OutOfMemoryError``. Fresh memory is filled with 0xA5 bytes, never zeros.
* Streams are lazy: copies and kernels are queued on a stream and run only when something waits
  for them (``Stream.synchronize``, ``Event.synchronize``, another stream's ``wait_event`` once that
  stream runs, or ``.get()``). ``Event.done`` reports progress without forcing any. A copy from
  pinned memory reads the host buffer when it runs, so reusing that buffer before the event after
  the copy is done gives wrong data, as on a GPU; a copy from pageable memory is staged at once.
  Streams do not synchronise implicitly with the null stream (gpuimg uses non-blocking streams).
* :class:`ElementwiseKernel` interprets the kernel's C source: declarations, assignments, casts,
  ``| & << >>`` with C's integer promotions, integer literals, and the CUDA intrinsics
  ``__dmul_rn __dadd_rn __fmul_rn __fadd_rn __uint_as_float __longlong_as_double``. Every
  conversion must be written as a cast (no implicit conversions), shifts must stay in range.

Test-only controls, not CuPy API: :func:`set_device_count`, :func:`pinned_bytes`.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections import deque
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

__version__ = "double"

_tls = threading.local()
_device_count = 1


# --------------------------------------------------------------------------------------------------
# Runtime, devices
# --------------------------------------------------------------------------------------------------
class CUDARuntimeError(RuntimeError):
    """CuPy's ``cupy.cuda.runtime.CUDARuntimeError``."""


class OutOfMemoryError(MemoryError):
    """CuPy's ``cupy.cuda.memory.OutOfMemoryError``."""

    def __init__(self, size: int, total: int, limit: int = 0) -> None:
        super().__init__(
            f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes, "
            f"limit set to: {limit:,} bytes)."
        )


def set_device_count(count: int) -> None:
    """Test control: how many devices ``runtime.getDeviceCount()`` reports."""
    global _device_count
    _device_count = count


def _get_device_count() -> int:
    return _device_count


def _device_stack() -> list[int]:
    if not hasattr(_tls, "devices"):
        _tls.devices = [0]
    return _tls.devices


class Device:
    """``cupy.cuda.Device``: a device id, usable as a context manager."""

    def __init__(self, device: int | Device | None = None) -> None:
        if device is None:
            self.id = _device_stack()[-1]
        elif isinstance(device, Device):
            self.id = device.id
        else:
            self.id = int(device)

    def __enter__(self) -> Device:
        if not 0 <= self.id < _device_count:
            raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
        _device_stack().append(self.id)
        return self

    def __exit__(self, *exc: object) -> None:
        _device_stack().pop()


# --------------------------------------------------------------------------------------------------
# Streams and events
# --------------------------------------------------------------------------------------------------
def _stream_stack() -> list[Stream]:
    if not hasattr(_tls, "streams"):
        _tls.streams = []
    return _tls.streams


class Stream:
    """``cupy.cuda.Stream``: an ordered queue of device work that runs only when waited for."""

    null: Stream

    def __init__(
        self, null: bool = False, non_blocking: bool = False, ptds: bool = False, priority: int = 0
    ) -> None:
        self._ops: deque[Callable[[], None]] = deque()
        self._queued = 0
        self._ran = 0
        self.device_id = -1 if null else _device_stack()[-1]

    def __enter__(self) -> Stream:
        _stream_stack().append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _stream_stack().pop()

    def record(self, event: Event | None = None) -> Event:
        """Record ``event`` (a new one if None) after the work queued so far."""
        event = Event() if event is None else event
        event.record(self)
        return event

    def synchronize(self) -> None:
        """Run everything queued."""
        self._run_through(self._queued)

    def wait_event(self, event: Event) -> None:
        """Later work on this stream runs after the work ``event`` was recorded behind."""
        marker = event._marker
        if marker is not None:
            stream, position = marker
            self._enqueue(lambda: stream._run_through(position))

    def _enqueue(self, op: Callable[[], None]) -> None:
        self._ops.append(op)
        self._queued += 1

    def _run_through(self, position: int) -> None:
        while self._ran < position:
            op = self._ops.popleft()
            self._ran += 1
            op()


Stream.null = Stream(null=True)


def get_current_stream(device_id: int = -1) -> Stream:
    """``cupy.cuda.get_current_stream``."""
    stack = _stream_stack()
    return stack[-1] if stack else Stream.null


class Event:
    """``cupy.cuda.Event``."""

    def __init__(
        self, block: bool = False, disable_timing: bool = False, interprocess: bool = False
    ) -> None:
        self._marker: tuple[Stream, int] | None = None

    def record(self, stream: Stream | None = None) -> None:
        """Record on ``stream`` (the null stream by default, as CuPy documents)."""
        stream = Stream.null if stream is None else stream
        self._marker = (stream, stream._queued)

    def synchronize(self) -> None:
        """Wait for (here: run) the work recorded before this event."""
        if self._marker is not None:
            stream, position = self._marker
            stream._run_through(position)

    @property
    def done(self) -> bool:
        """True once the recorded work has run; querying never makes it run."""
        if self._marker is None:
            return True
        stream, position = self._marker
        return stream._ran >= position


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------
class MemoryPool:
    """``cupy.cuda.MemoryPool``: counts device bytes in 512-byte blocks."""

    def __init__(self) -> None:
        self._used = 0
        self._cached = 0
        self._limit = 0

    def used_bytes(self) -> int:
        return self._used

    def total_bytes(self) -> int:
        return self._used + self._cached

    def free_all_blocks(self, stream: Stream | None = None) -> None:
        self._cached = 0

    def set_limit(self, size: int | None = None) -> None:
        self._limit = size or 0

    def get_limit(self) -> int:
        return self._limit

    def _malloc(self, nbytes: int) -> int:
        size = -(-nbytes // 512) * 512
        if self._limit and self.total_bytes() + size > self._limit:
            self.free_all_blocks()
            if self._used + size > self._limit:
                raise OutOfMemoryError(size, self._used, self._limit)
        self._cached -= min(self._cached, size)
        self._used += size
        return size

    def _free(self, size: int) -> None:
        self._used -= size
        self._cached += size


class PinnedMemoryPool:
    """``cupy.cuda.PinnedMemoryPool``: freed pinned blocks stay cached until ``free_all_blocks``."""

    def __init__(self) -> None:
        self._live = 0
        self._free_blocks: list[int] = []

    def n_free_blocks(self) -> int:
        return len(self._free_blocks)

    def free_all_blocks(self) -> None:
        self._free_blocks.clear()

    def _freed(self, size: int) -> None:
        self._live -= size
        self._free_blocks.append(size)


_memory_pool = MemoryPool()
_pinned_pool = PinnedMemoryPool()
_pinned_ranges: dict[int, tuple[int, int]] = {}


def get_default_memory_pool() -> MemoryPool:
    return _memory_pool


def get_default_pinned_memory_pool() -> PinnedMemoryPool:
    return _pinned_pool


def pinned_bytes() -> int:
    """Test control: bytes of pinned memory alive (not yet freed to the pinned pool)."""
    return _pinned_pool._live


def _on_pinned_freed(key: int, size: int) -> None:
    del _pinned_ranges[key]
    _pinned_pool._freed(size)


class PinnedMemoryPointer(bytearray):
    """``cupy.cuda.PinnedMemoryPointer``: exposes the buffer protocol (``np.frombuffer``)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size
        self.ptr = np.frombuffer(self, dtype=np.uint8).ctypes.data
        _pinned_ranges[id(self)] = (self.ptr, self.ptr + size)
        _pinned_pool._live += size
        weakref.finalize(self, _on_pinned_freed, id(self), size)


def alloc_pinned_memory(size: int) -> PinnedMemoryPointer:
    """``cupy.cuda.alloc_pinned_memory``."""
    return PinnedMemoryPointer(size)


def _is_pinned(array: np.ndarray) -> bool:
    address = array.__array_interface__["data"][0]
    return any(start <= address < stop for start, stop in _pinned_ranges.values())


class _Memory:
    """One device allocation; its bytes go back to the pool when it is garbage collected."""

    def __init__(self, nbytes: int) -> None:
        size = _memory_pool._malloc(nbytes)
        self.bytes = np.full(nbytes, 0xA5, dtype=np.uint8)
        weakref.finalize(self, _memory_pool._free, size)


# --------------------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------------------
_DEVICE_KINDS = "biufc"


class _Flags(SimpleNamespace):
    c_contiguous: bool
    f_contiguous: bool
    owndata: bool


def _convert(target: np.ndarray, source: np.ndarray) -> None:
    with np.errstate(all="ignore"):  # a GPU converts without warnings
        np.copyto(target, source, casting="unsafe")


class ndarray:  # noqa: N801 - CuPy's name
    """``cupy.ndarray``: a numpy view into double-owned device memory."""

    def __init__(
        self, shape: int | tuple[int, ...], dtype: object = float, order: str = "C"
    ) -> None:
        dtype = np.dtype(dtype)
        if dtype.kind not in _DEVICE_KINDS or not dtype.isnative or dtype.itemsize > 16:
            raise ValueError(f"Unsupported dtype {dtype}")
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        count = int(np.prod(shape, dtype=np.int64))
        self._memory = _Memory(count * dtype.itemsize)
        self._view = self._memory.bytes.view(dtype).reshape(shape, order=order)
        self._base: ndarray | None = None

    @classmethod
    def _view_of(cls, base: ndarray, view: np.ndarray) -> ndarray:
        array = cls.__new__(cls)
        array._memory, array._view, array._base = base._memory, view, base
        return array

    shape = property(lambda self: self._view.shape)
    dtype = property(lambda self: self._view.dtype)
    size = property(lambda self: self._view.size)
    ndim = property(lambda self: self._view.ndim)
    nbytes = property(lambda self: self._view.nbytes)
    itemsize = property(lambda self: self._view.itemsize)
    strides = property(lambda self: self._view.strides)

    @property
    def flags(self) -> _Flags:
        return _Flags(
            c_contiguous=self._view.flags.c_contiguous,
            f_contiguous=self._view.flags.f_contiguous,
            owndata=self._base is None,
        )

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def __repr__(self) -> str:
        return f"<cupy_double.ndarray shape={self.shape} dtype={self.dtype}>"

    def __getitem__(self, key: object) -> ndarray:
        key = key if isinstance(key, tuple) else (key,)
        for item in key:
            if not isinstance(item, (int, np.integer, slice, type(None), type(Ellipsis))):
                raise NotImplementedError(f"the double supports basic indexing only, got {item!r}")
        if not any(item is Ellipsis for item in key):
            key = (*key, Ellipsis)
        return ndarray._view_of(self, self._view[key])

    def reshape(self, *shape: object, order: str = "C") -> ndarray:
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        view = self._view.reshape(shape, order=order)
        if view.size and not np.may_share_memory(view, self._view):
            raise NotImplementedError("the double only reshapes without a copy")
        return ndarray._view_of(self, view)

    def transpose(self, *axes: object) -> ndarray:
        """A view with the axes permuted, as ``cupy.ndarray.transpose``."""
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return ndarray._view_of(self, self._view.transpose(*axes))

    def copy(self, order: str = "C") -> ndarray:
        """A new array; the copy runs on the current stream."""
        return self.astype(self.dtype, order=order)

    def astype(self, dtype: object, order: str = "K", copy: bool = True) -> ndarray:
        """A converted copy (or ``self`` when ``copy`` is False and the dtype matches)."""
        if not copy and self.dtype == dtype:
            return self
        fortran = order == "F" or (order in "AK" and self.flags.f_contiguous)
        out = ndarray(self.shape, dtype, order="F" if fortran else "C")
        source, target = self._view, out._view
        get_current_stream()._enqueue(lambda: _convert(target, source))
        return out

    def get(
        self,
        stream: Stream | None = None,
        order: str = "C",
        out: object = None,
        blocking: bool = True,
    ) -> np.ndarray:
        """Copy to the host after the work queued on ``stream`` (the current stream) has run."""
        if out is not None or not blocking:
            raise NotImplementedError("the double supports blocking get() into a new array only")
        (get_current_stream() if stream is None else stream).synchronize()
        return np.array(self._view, order=order)

    def set(self, arr: np.ndarray, stream: Stream | None = None) -> None:
        """Copy ``arr`` from the host; pinned sources are read when the copy runs."""
        if not isinstance(arr, np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if self.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if self.shape != arr.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        if self.flags.c_contiguous:
            source = np.ascontiguousarray(arr)
        elif self.flags.f_contiguous:
            source = np.asfortranarray(arr)
        else:
            raise RuntimeError("Cannot set to non-contiguous array")
        if not (_is_pinned(source) and source is arr):
            source = source.copy(order="A")  # pageable memory is staged before the call returns
        target = self._view
        queue = get_current_stream() if stream is None else stream
        queue._enqueue(lambda: np.copyto(target, source))
        if stream is None and queue is Stream.null:
            queue.synchronize()


def empty(shape: int | tuple[int, ...], dtype: object = float, order: str = "C") -> ndarray:
    """``cupy.empty``: uninitialised (0xA5-filled) device memory."""
    return ndarray(shape, dtype, order)


def asnumpy(a: object, stream: Stream | None = None, order: str = "C") -> np.ndarray:
    """``cupy.asnumpy``."""
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order)
    return np.asarray(a, order=order)


# --------------------------------------------------------------------------------------------------
# ElementwiseKernel: a small interpreter for the C the kernels are written in
# --------------------------------------------------------------------------------------------------
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
_INTRINSICS: dict[str, tuple[tuple[np.dtype, ...], Callable[..., np.ndarray]]] = {
    "__dmul_rn": ((_F8, _F8), np.multiply),
    "__dadd_rn": ((_F8, _F8), np.add),
    "__fmul_rn": ((_F4, _F4), np.multiply),
    "__fadd_rn": ((_F4, _F4), np.add),
    "__uint_as_float": ((np.dtype(np.uint32),), lambda a: a.view(_F4)),
    "__longlong_as_double": ((np.dtype(np.int64),), lambda a: a.view(_F8)),
}
_TOKEN = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|\d+)(?P<suffix>[uUlL]*)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op><<|>>|[()=;,|&]))"
)


def _tokenize(source: str) -> list[str | tuple[int, str]]:
    tokens: list[str | tuple[int, str]] = []
    position = 0
    while source[position:].strip():
        match = _TOKEN.match(source, position)
        if match is None:
            raise SyntaxError(f"the double cannot parse {source[position : position + 30]!r}")
        if match["num"]:
            tokens.append((int(match["num"], 0), match["suffix"].lower()))
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


class _Program:
    """Parsed kernel body: a list of ``(declared dtype or None, name, expression)`` statements."""

    def __init__(self, source: str) -> None:
        self._tokens = _tokenize(source)
        self._position = 0
        self.statements = []
        while self._position < len(self._tokens):
            dtype = self._type() if self._peek() in _TYPE_WORDS else None
            name = self._next()
            self._expect("=")
            self.statements.append((dtype, name, self._expression()))
            self._expect(";")

    def _peek(self) -> object:
        return self._tokens[self._position] if self._position < len(self._tokens) else None

    def _next(self) -> object:
        token = self._peek()
        self._position += 1
        return token

    def _expect(self, token: str) -> None:
        found = self._next()
        if found != token:
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
        writable = set(outputs)
        for dtype, name, node in self.statements:
            value = self._evaluate(node, names)
            if dtype is None and name not in writable:
                raise SyntaxError(f"{name!r} is an input or undeclared; it cannot be assigned")
            writable.add(name)
            expected = dtype if dtype is not None else names[name].dtype
            if value.dtype != expected:
                raise TypeError(f"implicit conversion from {value.dtype} to {expected} in {name!r}")
            names[name] = value
        return names

    def _evaluate(self, node: tuple, names: dict[str, np.ndarray]) -> np.ndarray:
        kind = node[0]
        if kind == "literal":
            return node[1]
        if kind == "name":
            return names[node[1]]
        if kind == "cast":
            with np.errstate(all="ignore"):
                return self._evaluate(node[2], names).astype(node[1])
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


def _parse_params(params: str) -> list[tuple[np.dtype, str]]:
    parsed = []
    for param in params.split(","):
        type_name, name = param.split()
        parsed.append((np.dtype(type_name), name))
        if parsed[-1][0].name != type_name:
            raise ValueError(f"Wrong type {type_name}")
    return parsed


class ElementwiseKernel:
    """``cupy.ElementwiseKernel`` for concrete-typed parameters and explicit outputs."""

    def __init__(
        self,
        in_params: str,
        out_params: str,
        operation: str,
        name: str = "kernel",
        **kwargs: object,
    ) -> None:
        if kwargs.get("preamble"):
            raise NotImplementedError("the double does not interpret a preamble")
        self.in_params = _parse_params(in_params)
        self.out_params = _parse_params(out_params)
        self.operation = operation
        self.name = name
        self._program: _Program | None = None

    def __call__(self, *args: object) -> ndarray:
        if len(args) != len(self.in_params) + len(self.out_params):
            raise NotImplementedError("the double needs every input and output array passed")
        if self._program is None:
            self._program = _Program(self.operation)
        params = self.in_params + self.out_params
        outputs = args[len(self.in_params) :]
        if not all(isinstance(out, ndarray) for out in outputs):
            raise TypeError("the double needs cupy_double.ndarray outputs")
        for (dtype, name), arg in zip(params, args, strict=True):
            if isinstance(arg, ndarray) and arg.dtype != dtype:
                raise TypeError(f"Type is mismatched. {name} {arg.dtype.type} {dtype.type}")
            if isinstance(arg, np.ndarray):
                raise TypeError(f"Unsupported type {type(arg)}")
        shape = np.broadcast_shapes(*(arg.shape for arg in args if isinstance(arg, ndarray)))
        if any(out.shape != shape for out in outputs):
            raise ValueError(f"output shape {[out.shape for out in outputs]} is not {shape}")
        program = self._program

        def run() -> None:
            names = {
                name: (arg._view if isinstance(arg, ndarray) else np.asarray(arg, dtype=dtype))
                for (dtype, name), arg in zip(params, args, strict=True)
            }
            results = program.evaluate(names, {name for _, name in self.out_params})
            for (_, name), out in zip(self.out_params, outputs, strict=True):
                out._view[...] = results[name]

        get_current_stream()._enqueue(run)
        return outputs[0]


cuda = SimpleNamespace(
    Device=Device,
    Event=Event,
    Stream=Stream,
    PinnedMemoryPointer=PinnedMemoryPointer,
    alloc_pinned_memory=alloc_pinned_memory,
    get_current_stream=get_current_stream,
    memory=SimpleNamespace(OutOfMemoryError=OutOfMemoryError),
    runtime=SimpleNamespace(CUDARuntimeError=CUDARuntimeError, getDeviceCount=_get_device_count),
)
