"""Open sockets per client address on this replica. ``take`` is synchronous
and the shell calls it before the connection's first await, so a burst of
concurrent upgrades from one address is counted one by one and cannot race
past the limit; each slot is given back exactly once, however the socket
ends."""

from __future__ import annotations


class AddressSlot:
    """One counted socket of an address; ``release`` gives it back once (a
    second call does nothing)."""

    __slots__ = ("_address", "_owner")

    def __init__(self, owner: AddressSlots, address: str) -> None:
        self._owner: AddressSlots | None = owner
        self._address = address

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._give_back(self._address)


class AddressSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def take(self, address: str) -> AddressSlot | None:
        """A slot for one more socket of ``address``, or None at the limit."""
        count = self._open.get(address, 0)
        if count >= self.limit:
            return None
        self._open[address] = count + 1
        return AddressSlot(self, address)

    def open(self, address: str) -> int:
        return self._open.get(address, 0)

    def __len__(self) -> int:
        """Addresses with at least one open socket."""
        return len(self._open)

    def _give_back(self, address: str) -> None:
        left = self._open.get(address, 0) - 1
        if left > 0:
            self._open[address] = left
        else:
            self._open.pop(address, None)
