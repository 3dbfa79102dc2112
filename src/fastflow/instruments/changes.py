"""What changed between two instrument masters of one broker: the day's rollover.

An instrument is its symbol (``EXCHANGE:TRADINGSYMBOL``) and its broker id (the
Kite instrument token, the Upstox instrument_key). From one day's master to the
next, contracts expire (their symbols are gone), new ones are listed (new
symbols), and an exchange may give an expired contract's id to a new one
(Kite's tokens are recycled): such an id is *reused*, it names another
instrument today. :func:`master_change` compares two masters by symbol and by
id; the plant (:meth:`fastflow.services.plant.Plant.roll_over`) acts on it.

Cold code: once a day, on whole columns.
"""

from __future__ import annotations

import dataclasses

from fastflow.instruments.model import Instruments


@dataclasses.dataclass(frozen=True)
class MasterChange:
    """From the ``old`` master to the ``new`` one (:func:`master_change`)."""

    #: Symbols of the old master that the new one does not list (expired contracts), sorted.
    expired: tuple[str, ...]
    #: Symbols of the new master that the old one did not list (new contracts), sorted.
    listed: tuple[str, ...]
    #: Broker ids (as strings) in both masters that name another symbol now, sorted.
    reused: tuple[str, ...]
    #: Instruments in the old and the new master.
    before: int
    after: int

    def __bool__(self) -> bool:
        return bool(self.expired or self.listed or self.reused)

    def summary(self) -> str:
        """One line: counts, and a few of the symbols."""
        def some(symbols: tuple[str, ...]) -> str:
            shown = ", ".join(symbols[:3])
            return f" ({shown}{', ...' if len(symbols) > 3 else ''})" if symbols else ""

        text = (f"{self.before:,} -> {self.after:,} instruments: {len(self.expired):,} expired{some(self.expired)}, "
                f"{len(self.listed):,} new{some(self.listed)}")
        if self.reused:
            text += f", {len(self.reused):,} ids reused"
        return text


def master_change(old: Instruments, new: Instruments) -> MasterChange:
    """Compare two masters of one broker (see the module docstring)."""
    if old.broker != new.broker:
        raise ValueError(f"a {old.broker} and a {new.broker} instrument master do not compare")
    old_symbols = [str(s) for s in old.symbol]
    new_symbols = [str(s) for s in new.symbol]
    before, after = set(old_symbols), set(new_symbols)
    was = dict(zip((str(k) for k in old.instrument_key), old_symbols, strict=True))
    reused = sorted(key for key, symbol in zip((str(k) for k in new.instrument_key), new_symbols, strict=True)
                    if was.get(key, symbol) != symbol)
    return MasterChange(expired=tuple(sorted(before - after)), listed=tuple(sorted(after - before)),
                        reused=tuple(reused), before=len(old), after=len(new))
