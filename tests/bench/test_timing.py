"""The timing helpers on the CPU: call counts, median, and the device-memory monitor's peak (fake reader)."""

from __future__ import annotations

import itertools
import time

import torch

from sana_wm.bench import timing


def test_time_forward_warms_up_then_times_each_repeat() -> None:
    calls = []

    def fn() -> torch.Tensor:
        calls.append(len(calls))
        return torch.full((2,), float(len(calls)))

    result = timing.time_forward(fn, torch.device("cpu"), warmup=2, repeats=3)
    assert len(calls) == 5 and len(result.seconds) == 3
    assert result.output.tolist() == [5.0, 5.0]  # the last call's output
    assert result.median_s == sorted(result.seconds)[1]
    assert result.peak_allocated_gib is None and result.peak_device_gib is None


def test_device_memory_monitor_keeps_the_largest_reading(monkeypatch) -> None:
    gib = 2**30
    readings = itertools.chain([1 * gib, 5 * gib, 3 * gib], itertools.repeat(2 * gib))
    monkeypatch.setattr(timing, "device_memory_reader", lambda device: ("fake", lambda: next(readings)))
    with timing.DeviceMemoryMonitor(torch.device("cuda"), interval_s=0.001) as monitor:
        time.sleep(0.05)
    assert monitor.source == "fake" and monitor.peak_gib == 5.0


def test_device_memory_monitor_is_inert_on_the_cpu() -> None:
    with timing.DeviceMemoryMonitor(torch.device("cpu")) as monitor:
        pass
    assert monitor.peak_gib is None and monitor.source is None
