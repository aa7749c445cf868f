"""A byte budget: the email bytes this process holds at once, so memory has a ceiling.

Concurrency alone does not bound memory: ten 40 MB emails at once took a worker past
1.2 GB, and an out-of-memory kill drops every message in flight, again and again. So a
pipeline takes an email's size from the budget before it downloads or composes it, and
gives it back when it is done; when the budget is spent, it waits (its heartbeat keeps
the message invisible meanwhile). `MAILFLOW_MAX_IN_FLIGHT_BYTES` sets the size; the
Terraform module derives it from the task's memory (peak RSS is about 3x the bytes of
an email being handled).

An email larger than the whole budget is still handled, alone: it waits until nothing
else is held, so it never waits for ever and never shares the process's memory.
Waiters are served first come, first served: a stream of small emails cannot starve a
large one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from mailflow.observability import metrics


class ByteBudget:
    """Counted bytes, shared by every pipeline of one worker process."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._changed = anyio.Condition()
        self._tickets = 0  # handed out to waiters, in arrival order
        self._serving = 0  # the ticket whose turn it is
        self._abandoned: set[int] = set()  # tickets of waiters cancelled before their turn

    def _fits(self, amount: int) -> bool:
        return self.used == 0 or self.used + amount <= self.capacity

    def try_take(self, amount: int) -> bool:
        """Take `amount` bytes now if they fit and nobody is waiting; never waits."""
        amount = min(amount, self.capacity)
        if self._serving != self._tickets or not self._fits(amount):
            return False
        self._add(amount)
        return True

    async def take(self, amount: int) -> None:
        """Take `amount` bytes, waiting (in turn) until they fit."""
        if self.try_take(amount):
            return
        amount = min(amount, self.capacity)
        metrics.BUDGET_WAITS.inc()
        async with self._changed:
            ticket = self._tickets
            self._tickets += 1
            try:
                while ticket != self._serving or not self._fits(amount):
                    await self._changed.wait()
                self._add(amount)
            finally:
                # Served or cancelled, the turn passes on (a cancelled waiter must not
                # block everyone behind it).
                if ticket == self._serving:
                    self._serving += 1
                else:
                    self._abandoned.add(ticket)
                self._skip_abandoned()
                self._changed.notify_all()

    async def give(self, amount: int) -> None:
        """Return bytes taken earlier (shielded: a cancelled holder still gives back)."""
        with anyio.CancelScope(shield=True):
            async with self._changed:
                self._add(-min(amount, self.capacity))
                self._changed.notify_all()

    @asynccontextmanager
    async def held(self, amount: int) -> AsyncIterator[None]:
        """`take` on entry, `give` on exit."""
        await self.take(amount)
        try:
            yield
        finally:
            await self.give(amount)

    def _skip_abandoned(self) -> None:
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1

    def _add(self, amount: int) -> None:
        self.used += amount
        metrics.IN_FLIGHT_BYTES.set(self.used)
