"""The tick clock and its three drivers."""

from __future__ import annotations

import asyncio

from graphcomms.clock import Clock, FastDriver, RealTimeDriver, VirtualDriver


def test_clock_runs_due_timers_before_listeners_in_due_order():
    clock = Clock()
    seen: list[str] = []
    clock.call_later(40, lambda: seen.append("b@40"))
    clock.call_later(20, lambda: seen.append("a@20"))
    clock.call_later(45, lambda: seen.append("c@45 runs at 60"))
    clock.add_listener(lambda now: seen.append(f"tick {now}"))
    for _ in range(3):
        clock.tick()
    assert seen == [
        "a@20",
        "tick 20",
        "b@40",
        "tick 40",
        "c@45 runs at 60",
        "tick 60",
    ]


def test_cancelled_timer_never_fires_and_is_not_next_due():
    clock = Clock()
    fired: list[int] = []
    timer = clock.call_later(20, lambda: fired.append(1))
    clock.call_later(100, lambda: fired.append(2))
    timer.cancel()
    assert clock.next_due_ms() == 100
    clock.tick()
    assert fired == []


async def test_virtual_driver_rounds_up_to_whole_ticks():
    clock = Clock()
    driver = VirtualDriver(clock)
    assert await driver.advance(30) == 40
    assert await driver.advance(0) == 40


async def test_virtual_driver_waits_for_held_work_before_ticking():
    clock = Clock()
    driver = VirtualDriver(clock)
    held: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    clock.hold(held)
    ticked_at: list[bool] = []
    clock.add_listener(lambda now: ticked_at.append(held.done()))
    advancing = asyncio.create_task(driver.advance(20))
    await asyncio.sleep(0.01)
    assert ticked_at == []
    held.set_result(None)
    await advancing
    assert ticked_at == [True]


async def test_fast_driver_waits_while_busy_and_for_grace():
    clock = Clock()
    busy = True
    driver = FastDriver(clock, busy=lambda: busy, has_work=lambda: True, grace_s=0.05)
    task = asyncio.create_task(driver.run())
    try:
        await asyncio.sleep(0.05)
        assert clock.now_ms() == 0
        busy = False
        await asyncio.sleep(0.02)
        assert clock.now_ms() == 0  # still inside the grace period
        await asyncio.sleep(0.1)
        assert clock.now_ms() > 1000  # then it runs far ahead of real time
    finally:
        task.cancel()


async def test_fast_driver_sleeps_without_work():
    clock = Clock()
    driver = FastDriver(clock, busy=lambda: False, has_work=lambda: False, grace_s=0)
    task = asyncio.create_task(driver.run())
    await asyncio.sleep(0.05)
    task.cancel()
    assert clock.now_ms() == 0


async def test_real_time_driver_ticks_at_frame_rate():
    clock = Clock()
    driver = RealTimeDriver(clock)
    task = asyncio.create_task(driver.run())
    await asyncio.sleep(0.25)
    task.cancel()
    # 12 ticks in 250 ms, give or take scheduling on a loaded machine
    assert 5 <= clock.now_ms() // 20 <= 13


def test_failing_timer_or_listener_does_not_stop_time(caplog):
    clock = Clock()
    seen: list[int] = []

    def broken(now: int = 0) -> None:
        raise RuntimeError("boom")

    clock.call_later(20, broken)
    clock.add_listener(broken)
    clock.add_listener(seen.append)
    clock.tick()
    clock.tick()
    assert seen == [20, 40]
    assert "time goes on" in caplog.text
