"""The batcher: concurrent submits become few flushes, and each caller gets its own answer."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from mailflow.aws.batch import Batcher


class Recorder:
    def __init__(self, fail: set[int] | None = None, raise_all: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail or set()
        self.raise_all = raise_all

    async def flush(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await anyio.sleep(0.01)  # an AWS round trip
        if self.raise_all:
            raise ConnectionError("endpoint gone")
        return [ValueError(f"bad {i}") if i in self.fail else i * 10 for i in items]


async def gather(batcher: Batcher[int, int], items: list[int]) -> dict[int, int | str]:
    answers: dict[int, int | str] = {}

    async def one(item: int) -> None:
        try:
            answers[item] = await batcher.submit(item)
        except Exception as exc:
            answers[item] = f"{type(exc).__name__}: {exc}"

    async with anyio.create_task_group() as tg:
        for item in items:
            tg.start_soon(one, item)
    return answers


async def test_concurrent_submits_share_one_flush_and_get_their_own_answers() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.flush, max_items=10)
    answers = await gather(batcher, list(range(7)))
    assert recorder.batches == [list(range(7))]
    assert answers == {i: i * 10 for i in range(7)}
    assert batcher.calls == 1


async def test_a_full_batch_goes_at_once_and_the_rest_follow() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.flush, max_items=10, linger=5.0)
    with anyio.fail_after(2):  # a full batch never waits for the (long) linger
        answers = await gather(batcher, list(range(10)))
    assert answers == {i: i * 10 for i in range(10)}
    assert recorder.batches == [list(range(10))]


async def test_items_past_the_size_limit_open_a_new_batch() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.flush, max_items=10, max_size=25, size_of=lambda i: 10)
    answers = await gather(batcher, list(range(5)))
    assert answers == {i: i * 10 for i in range(5)}
    assert [len(b) for b in recorder.batches] == [2, 2, 1]


async def test_an_item_larger_than_the_limit_still_goes_alone() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.flush, max_items=10, max_size=5, size_of=lambda i: 100)
    assert await gather(batcher, [1, 2]) == {1: 10, 2: 20}
    assert recorder.batches == [[1], [2]]


async def test_one_failed_entry_fails_only_its_caller() -> None:
    batcher = Batcher(Recorder(fail={3}).flush, max_items=10)
    answers = await gather(batcher, [1, 2, 3, 4])
    assert answers == {1: 10, 2: 20, 3: "ValueError: bad 3", 4: 40}


async def test_a_failed_call_fails_every_caller_of_that_batch() -> None:
    batcher = Batcher(Recorder(raise_all=True).flush, max_items=10)
    answers = await gather(batcher, [1, 2])
    assert answers == {1: "ConnectionError: endpoint gone", 2: "ConnectionError: endpoint gone"}


async def test_a_flush_that_answers_short_fails_its_callers_instead_of_misrouting() -> None:
    async def short(items: Sequence[int]) -> list[int | BaseException]:
        return [1]

    answers = await gather(Batcher(short, max_items=10), [1, 2])
    assert all(str(a).startswith("RuntimeError: batch answered 1 of 2") for a in answers.values())


async def test_a_cancelled_leader_still_answers_its_followers() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.flush, max_items=10, linger=0.05)
    follower: list[int] = []

    async def follow() -> None:
        follower.append(await batcher.submit(2))

    with anyio.fail_after(2):  # an unshielded leader would leave the follower hanging
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as leader_scope:
                tg.start_soon(follow)  # starts after the leader below has opened the batch
                leader_scope.cancel()
                await batcher.submit(1)  # shielded: the flush still happens
    assert follower == [20]
    assert recorder.batches == [[1, 2]]


async def test_submits_after_a_flush_open_a_new_batch() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.flush, max_items=10)
    assert await batcher.submit(1) == 10
    assert await batcher.submit(2) == 20
    assert recorder.batches == [[1], [2]]


@pytest.mark.parametrize("count", [1, 9, 10, 11, 25])
async def test_every_item_is_flushed_exactly_once(count: int) -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.flush, max_items=10)
    answers = await gather(batcher, list(range(count)))
    flushed = [i for b in recorder.batches for i in b]
    assert sorted(flushed) == list(range(count))
    assert all(len(b) <= 10 for b in recorder.batches)
    assert answers == {i: i * 10 for i in range(count)}
