"""MarketState and TickBatch (the twin of ``ext/market_state.pyx``).

The state is one numpy structured array of :func:`slot_dtype` records (of
the state's broker), one per instrument, plus the dirty set (slots changed since the last flush, in
the order they were first changed). The decoder writes straight into the
array; :attr:`MarketState.array` is a live, read-only view of it.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import msgpack
import numpy as np
import numpy.typing as npt

from fastflow.reference.broker_wire import KITE_SEGMENT_INDICES
from fastflow.reference.flow_detector import FlowDetector
from fastflow.reference.slot_state import (
    BROKERS,
    FF_BROKER_KITE,
    FF_BROKER_UPSTOX,
    IDENTITY_FIELDS,
    depth_capacity,
    slot_dtype,
)
from fastflow.reference.tick_encoder import encode_tick, tick_dict
from fastflow.reference.token_index import KeyIndex, TokenIndex

__all__ = ["InstrumentsLike", "MarketState", "TickBatch", "slot_dtype"]

_SSIZE_MIN = -(2**63)
_SSIZE_MAX = 2**63 - 1
_INT64_MAX = 2**63 - 1
_UINT32_MAX = 0xFFFFFFFF
_UINT8_MAX = 0xFF
_TPFLAGS_HEAPTYPE = 1 << 9


def c_type_name(value: object) -> str:
    """The C ``tp_name`` of ``value``'s type, as Cython's argument type errors
    print it: the bare name of a class defined in Python, ``module.name`` of
    an extension type (``numpy.ndarray``)."""
    kind = type(value)
    if kind.__flags__ & _TPFLAGS_HEAPTYPE or kind.__module__ == "builtins":
        return kind.__name__
    return f"{kind.__module__}.{kind.__qualname__}"


def as_ssize(value: Any) -> int:
    """``value`` as a C Py_ssize_t argument: what Cython accepts and raises."""
    i = operator.index(value)
    if not _SSIZE_MIN <= i <= _SSIZE_MAX:
        raise OverflowError("Python int too large to convert to C ssize_t")
    return i


class InstrumentsLike(Protocol):
    """What MarketState needs of an instrument master (duck-typed). An
    Upstox master (``broker == "upstox"``) also has ``segment_id``,
    ``tradable`` and ``instrument_key`` columns."""

    @property
    def token(self) -> Iterable[Any]: ...

    @property
    def price_divisor(self) -> Iterable[Any]: ...

    @property
    def symbol(self) -> Iterable[Any]: ...

    def slot(self, key: str) -> int: ...


class TickBatch:
    """The ticks of every instrument that changed since the previous flush.

    ``data`` holds the msgpack maps back to back; tick ``i`` is
    ``data[offsets[i]:offsets[i + 1]]`` and belongs to state slot ``slots[i]``.
    ``receive_time_ns`` is the oldest positive receive time of its ticks (0: none).
    """

    _data: bytes
    _slots: bytes
    _offsets: bytes
    _n: int
    _symbol_table: Sequence[str]  # the state's symbols, by slot (never modified)
    _receive_time_ns: int
    _flow: bytes
    _flow_offsets: bytes
    _flow_count: int

    def __init__(self) -> None:
        raise TypeError("TickBatch objects are made by MarketState.flush()")

    @classmethod
    def _create(cls, blobs: list[bytes], slots: list[int], symbol_table: Sequence[str],
                receive_time_ns: int = 0, flow: bytes = b"", flow_offsets: bytes = b"",
                flow_count: int = 0) -> TickBatch:
        offsets = [0]
        for blob in blobs:
            offsets.append(offsets[-1] + len(blob))
        batch = cls.__new__(cls)
        batch._data = b"".join(blobs)
        batch._slots = np.array(slots, dtype=np.int32).tobytes()
        batch._offsets = np.array(offsets, dtype=np.int64).tobytes()
        batch._n = len(blobs)
        batch._symbol_table = symbol_table
        batch._receive_time_ns = receive_time_ns
        batch._flow = flow
        batch._flow_offsets = flow_offsets
        batch._flow_count = flow_count
        return batch

    def flow_events(self) -> list[bytes]:
        """The msgpack map of each flow event (a list of bytes, sliced from :attr:`flow`)."""
        if not self._flow_count:
            return []
        offsets = np.frombuffer(self._flow_offsets, dtype=np.int64)
        return [self._flow[int(offsets[i]):int(offsets[i + 1])] for i in range(self._flow_count)]

    @property
    def flow(self) -> bytes:
        """The flush's options-flow events as one msgpack array (b"" when none or flow is off)."""
        return self._flow

    @property
    def flow_count(self) -> int:
        return self._flow_count

    @property
    def data(self) -> bytes:
        return self._data

    @property
    def receive_time_ns(self) -> int:
        """The oldest positive receive time (epoch ns) of the batch's ticks, 0 when none has one."""
        return self._receive_time_ns

    def __len__(self) -> int:
        return self._n

    @property
    def slots(self) -> npt.NDArray[np.int32]:
        """int32 numpy array: the state slot of each tick."""
        return np.frombuffer(self._slots, dtype=np.int32)

    @property
    def offsets(self) -> npt.NDArray[np.int64]:
        """int64 numpy array of n + 1 offsets into :attr:`data`."""
        return np.frombuffer(self._offsets, dtype=np.int64)

    def __getitem__(self, i: int) -> bytes:
        """The msgpack blob of tick ``i``."""
        i = as_ssize(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("TickBatch index out of range")
        offsets = self.offsets
        return self._data[int(offsets[i]) : int(offsets[i + 1])]

    def __iter__(self) -> Iterator[bytes]:
        for i in range(self._n):
            yield self[i]

    def frame(self) -> bytes:
        """One msgpack array of all the ticks: an array header before :attr:`data`."""
        header: bytes = msgpack.Packer().pack_array_header(self._n)
        return header + self._data

    def resp_hset(self, key: bytes) -> bytes:
        """``HSET key symbol_1 blob_1 ... symbol_n blob_n`` as one RESP2
        command (an array of bulk strings); ``b""`` for an empty batch."""
        if type(key) is not bytes:
            raise TypeError(f"Argument 'key' has incorrect type (expected bytes, got {c_type_name(key)})")
        if self._n == 0:
            return b""
        args = [b"HSET", key]
        for symbol, blob in zip(self.symbols(), self, strict=True):
            args += [symbol.encode("utf-8"), blob]
        return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in args)

    def symbols(self) -> list[str]:
        """The ``"EXCHANGE:TRADINGSYMBOL"`` of each tick."""
        return [self._symbol_table[int(slot)] for slot in self.slots]

    def __repr__(self) -> str:
        return f"<TickBatch ticks={self._n} bytes={len(self._data)}>"


class MarketState:
    """The live state of every instrument of an instrument master."""

    def __init__(self, instruments: InstrumentsLike) -> None:
        broker = str(getattr(instruments, "broker", "kite"))
        if broker not in BROKERS:
            raise ValueError(f"unknown broker {broker!r} (expected 'kite' or 'upstox')")
        tokens = [int(t) for t in instruments.token]
        divisors = [int(d) for d in instruments.price_divisor]
        symbols = [str(sym) for sym in instruments.symbol]
        n = len(tokens)
        keys: list[str] | None
        if broker == "kite":
            segments = [t & 0xFF for t in tokens]
            tradable = [seg != KITE_SEGMENT_INDICES for seg in segments]
            keys = None
        else:
            extra: Any = instruments
            segments = [int(seg) for seg in extra.segment_id]
            tradable = [bool(t) for t in extra.tradable]
            keys = [str(k) for k in extra.instrument_key]
        if n == 0:
            raise ValueError("MarketState needs at least one instrument")
        if (
            len(divisors) != n
            or len(symbols) != n
            or len(segments) != n
            or len(tradable) != n  # the compiled code omits this check (see the tests)
            or (keys is not None and len(keys) != n)
        ):
            raise ValueError("instrument columns have different lengths")
        self._key_index: KeyIndex | None
        if keys is None:
            self._index = TokenIndex(tokens)
            self._key_index = None
        else:
            self._index = TokenIndex([])  # Upstox states are not looked up by token
            self._key_index = KeyIndex(keys)
        self._broker = broker
        self._dtype = slot_dtype(broker)
        # The memory of the state; _slots is a writable structured view of it.
        self._memory = bytearray(n * self._dtype.itemsize)
        self._slots: npt.NDArray[np.void] = np.frombuffer(self._memory, dtype=self._dtype)
        for i in range(n):
            if divisors[i] <= 0:
                raise ValueError(f"price divisor of slot {i} must be positive, got {divisors[i]}")
            if not 0 <= tokens[i] <= _UINT32_MAX:
                raise ValueError(f"token {tokens[i]} at slot {i} is not a 32-bit unsigned integer")
            self._slots["token"][i] = tokens[i]
            # What the C conversions of the compiled code raise:
            if segments[i] < 0:
                raise OverflowError("can't convert negative value to uint8_t")
            if segments[i] > _UINT8_MAX:
                raise OverflowError("value too large to convert to uint8_t")
            self._slots["segment"][i] = segments[i]
            self._slots["tradable"][i] = tradable[i]
            self._slots["broker"][i] = FF_BROKER_KITE if keys is None else FF_BROKER_UPSTOX
            if divisors[i] > _INT64_MAX:  # what the C int64_t field cannot hold
                raise OverflowError("Python int too large to convert to C long")
            self._slots["price_divisor"][i] = divisors[i]
            self._slots["depth_capacity"][i] = depth_capacity(broker)
            self._slots["has_ext"][i] = keys is not None
            symbols[i].encode("utf-8")  # a symbol msgpack cannot encode fails here, as in C
        self._symbols = symbols
        self._keys = keys
        self._instruments = instruments
        # slot -> None, in the order the slots first changed since the last flush
        self._dirty: dict[int, None] = {}
        self._flushes = 0
        self._flow: FlowDetector | None = None
        self._flushed_ticks = 0

    # -- used by the decoders --------------------------------------------------

    def _mark_dirty(self, slot: int) -> None:
        self._dirty.setdefault(slot, None)

    # -- public ------------------------------------------------------------------

    @property
    def broker(self) -> str:
        """The broker of the instrument master: "kite" or "upstox"."""
        return self._broker

    @property
    def instruments(self) -> InstrumentsLike:
        return self._instruments

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def array(self) -> npt.NDArray[np.void]:
        """The whole state as a read-only numpy structured array (no copy)."""
        return np.frombuffer(memoryview(self._memory).toreadonly(), dtype=self._dtype)

    @property
    def dirty_count(self) -> int:
        """Instruments changed since the last flush."""
        return len(self._dirty)

    def slot(self, key: int | str) -> int:
        """The slot of an instrument token (int) or symbol (``"NSE:INFY"``)."""
        if isinstance(key, bool):
            raise TypeError("an instrument key is an int token or a str symbol, not bool")
        if isinstance(key, str):
            slot = self._instruments.slot(key)
            if not 0 <= slot < len(self._slots):
                raise IndexError(
                    f"instruments.slot({key!r}) returned {slot}, outside 0..{len(self._slots) - 1}"
                )
            return int(slot)
        if getattr(type(key), "__index__", None) is None:  # ints and numpy integers
            raise TypeError(f"an instrument key is an int token or a str symbol, not {type(key).__name__}")
        token = operator.index(key)
        if self._keys is not None:
            raise KeyError(
                f"unknown instrument token {token}: Upstox instruments are looked up by "
                f"instrument_key ('NSE_EQ|INE009A01021') or symbol ('NSE:INFY')"
            )
        slot = self._index.get(token)
        if slot < 0:
            raise KeyError(f"unknown instrument token {token}")
        return slot

    def tick(self, key: int | str) -> dict[str, Any]:
        """The tick of one instrument as a dict with kiteconnect's keys."""
        return self.tick_at(self.slot(key))

    def _check_slot(self, slot: Any) -> int:
        i = as_ssize(slot)
        if not 0 <= i < len(self._slots):
            raise IndexError(f"slot {i} out of range (0..{len(self._slots) - 1})")
        return i

    def _key(self, slot: int) -> str | None:
        return None if self._keys is None else self._keys[slot]

    def tick_at(self, slot: int) -> dict[str, Any]:
        """The tick of the instrument in ``slot``."""
        slot = self._check_slot(slot)
        return tick_dict(self._slots[slot], self._symbols[slot], self._key(slot))

    def encode(self, key: int | str) -> bytes:
        """The msgpack blob of one instrument's tick (as flush() would emit it)."""
        slot = self._check_slot(self.slot(key))
        return encode_tick(self._slots[slot], self._symbols[slot], self._key(slot))

    def flush(self) -> TickBatch:
        """Encode every instrument changed since the last flush, clear the
        dirty set and return the encoded ticks as a :class:`TickBatch`."""
        slots = list(self._dirty)
        blobs = [encode_tick(self._slots[slot], self._symbols[slot], self._key(slot)) for slot in slots]
        self._dirty.clear()
        self._flushes += 1
        self._flushed_ticks += len(slots)
        flow, flow_offsets, count = self._flow.take() if self._flow is not None else (b"", b"", 0)
        return TickBatch._create(blobs, slots, self._symbols, self._oldest_receive_time(slots), flow, flow_offsets,
                                 count)

    def _oldest_receive_time(self, slots: list[int]) -> int:
        """The smallest positive ``recv_ns`` of ``slots``, 0 when none."""
        return min((t for t in (int(self._slots["recv_ns"][s]) for s in slots) if t > 0), default=0)

    def snapshot(self) -> TickBatch:
        """Every instrument that has had at least one update (``seq`` > 0), in
        slot order, as a :class:`TickBatch` with the blobs :meth:`flush` would
        emit (``receive_time_ns``: the oldest of them). Leaves the dirty set
        and the flush counters alone."""
        slots = [int(slot) for slot in np.flatnonzero(self._slots["seq"])]
        blobs = [encode_tick(self._slots[slot], self._symbols[slot], self._key(slot)) for slot in slots]
        return TickBatch._create(blobs, slots, self._symbols, self._oldest_receive_time(slots))

    def enable_flow(self, params: dict[str, Any], statics: list[Any], ident: bytes, ident_off: bytes,
                    first_id: int = 1) -> None:
        """Run options-flow detection on every update from now on (the compiled
        twin's docstring says more)."""
        if not isinstance(params, dict) or not isinstance(statics, list):
            raise TypeError("params must be a dict and statics a list")
        self._flow = FlowDetector(len(self._slots), params, statics, bytes(ident), bytes(ident_off),
                                  self._keys is not None, first_id)
        self._flow._array = self._slots

    @property
    def flow_stats(self) -> dict[str, int] | None:
        """The flow detector's counters, or None when flow is off."""
        return None if self._flow is None else self._flow.stats()

    def _updated(self, slot: int) -> None:
        """A decoder applied an update to ``slot``: mark it, and run flow detection."""
        self._mark_dirty(slot)
        if self._flow is not None:
            self._flow.update(slot, self._slots[slot])

    def clear(self) -> None:
        """Forget all market data (identity fields stay) and the dirty set."""
        identity = {name: self._slots[name].copy() for name in IDENTITY_FIELDS}
        self._memory[:] = bytes(len(self._memory))
        for name, column in identity.items():
            self._slots[name] = column
        self._dirty.clear()
        if self._flow is not None:
            self._flow.reset()

    def stats(self) -> dict[str, int]:
        """Counters."""
        return {
            "instruments": len(self._slots),
            "dirty": len(self._dirty),
            "flushes": self._flushes,
            "flushed_ticks": self._flushed_ticks,
        }
