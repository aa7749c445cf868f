"""The byte budget: bounded, fair, and never stuck."""

from __future__ import annotations

import anyio

from mailflow.engine.budget import ByteBudget


async def test_takes_within_capacity_and_waits_beyond_it() -> None:
    budget = ByteBudget(100)
    await budget.take(60)
    assert not budget.try_take(50)
    got: list[str] = []

    async def second() -> None:
        await budget.take(50)
        got.append("second")

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await anyio.sleep(0.05)
        assert got == []  # 60 + 50 > 100: waiting
        await budget.give(60)
    assert got == ["second"]
    assert budget.used == 50


async def test_an_email_larger_than_the_budget_runs_alone() -> None:
    budget = ByteBudget(100)
    await budget.take(10)
    order: list[str] = []

    async def huge() -> None:
        async with budget.held(500):
            order.append("huge")
            assert budget.used == 100  # all of it, nothing beside it

    async with anyio.create_task_group() as tg:
        tg.start_soon(huge)
        await anyio.sleep(0.05)
        assert order == []
        await budget.give(10)
    assert order == ["huge"]
    assert budget.used == 0


async def test_waiters_are_served_in_turn_so_small_ones_cannot_starve_a_big_one() -> None:
    budget = ByteBudget(100)
    await budget.take(30)
    order: list[str] = []

    async def waiter(name: str, amount: int) -> None:
        async with budget.held(amount):
            order.append(name)
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter, "big", 90)
        await anyio.sleep(0.02)
        for i in range(5):  # each would fit beside the 30 held: but big came first
            assert not budget.try_take(10)
            tg.start_soon(waiter, f"small-{i}", 10)
        await anyio.sleep(0.02)
        assert order == []
        await budget.give(30)
    assert order[0] == "big"
    assert budget.used == 0


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    budget = ByteBudget(100)
    await budget.take(100)
    done: list[str] = []

    async def patient() -> None:
        await budget.take(40)
        done.append("patient")

    async with anyio.create_task_group() as tg:
        with anyio.move_on_after(0.05):
            await budget.take(80)  # gives up while waiting for its turn to come
        tg.start_soon(patient)
        await anyio.sleep(0.02)
        await budget.give(100)
    assert done == ["patient"]
    assert budget.used == 40
