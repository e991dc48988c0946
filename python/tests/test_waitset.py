"""ndshm.WaitSet, ndshm.wait_any and `await reader.next()` (python/ndshm/waitset.py), with the
writer in another process. Checked: which readers are reported, the payloads, and that a
closed reader leaves its waitsets. No timing is asserted (generous timeouts only)."""

import asyncio
import multiprocessing as mp

import numpy as np
import pytest

import ndshm
from conftest import unique_name


def _writer(names, plan, go, done):
    ws = [ndshm.Writer(n) for n in names]
    go.set()
    for i, c in enumerate(plan):
        done.wait(20)
        done.clear()
        ws[c].publish(np.full(16, i, np.int64))
    done.wait(20)
    for w in ws:
        w.close()


@pytest.fixture
def channels():
    names = [unique_name(f"ws{i}") for i in range(8)]
    yield names
    for n in names:
        try:
            ndshm.unlink(n)
        except ndshm.Error:
            pass


def test_wait_any_and_waitset_say_which(channels):
    ctx = mp.get_context("fork")
    plan = [3, 0, 7, 7, 2, 5, 1, 6, 4, 0]
    go, done = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_writer, args=(channels, plan, go, done))
    p.start()
    try:
        assert go.wait(20)
        readers = [ndshm.Reader(n) for n in channels]
        ws = ndshm.WaitSet(readers)
        assert len(ws) == 8
        assert ws.wait(0) == []
        for i, c in enumerate(plan):
            done.set()
            got = ws.wait(20) if i % 2 else ndshm.wait_any(readers, 20)
            assert got == [readers[c]], f"step {i}: published on {c}, got {got}"
            st, arr, info = readers[c].read_next()
            assert st == ndshm.Status.OK and (arr == i).all()
        done.set()
        # a closed reader leaves the waitset first
        readers[0].close()
        assert len(ws) == 7
        ws.close()
        for r in readers:
            r.close()
    finally:
        p.join(20)
        if p.is_alive():
            p.kill()


def test_async_next(channels):
    ctx = mp.get_context("fork")
    plan = [1, 1, 1, 1, 1]
    go, done = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_writer, args=(channels, plan, go, done))
    p.start()
    try:
        assert go.wait(20)
        r = ndshm.Reader(channels[1])

        async def main():
            seen = []
            for i in range(len(plan)):
                done.set()
                st, arr, info = await r.next(timeout=20)
                assert st == ndshm.Status.OK
                seen.append(int(arr[0]))
            st, arr, info = await r.next(timeout=0.05)
            assert st == ndshm.Status.TIMEOUT
            return seen

        assert asyncio.run(main()) == list(range(len(plan)))
        done.set()
        r.close()
    finally:
        p.join(20)
        if p.is_alive():
            p.kill()
