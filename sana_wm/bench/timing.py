"""Measuring a forward: wall time, peak memory (the allocator's and the whole device's), the card's matmul
rate and per-module time.

On CUDA every measurement synchronises the device, so a time is the GPU's; on the CPU the same code runs
without synchronisation and without device-memory readings.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

GIB = 2**30
POLL_INTERVAL_S = 0.05


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Result of :func:`time_forward`: the last output and the seconds of each timed call."""

    output: torch.Tensor
    seconds: list[float]
    peak_allocated_gib: float | None = None
    peak_reserved_gib: float | None = None
    peak_device_gib: float | None = None
    device_memory_source: str | None = None

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.seconds)


def time_forward(
    fn: Callable[[], torch.Tensor], device: torch.device, *, warmup: int, repeats: int
) -> Timing:
    """``warmup`` untimed calls of ``fn``, then ``repeats`` timed ones, each between two synchronisations.

    Runs under ``torch.no_grad``. On CUDA the peaks cover the timed calls: ``max_memory_allocated``,
    ``max_memory_reserved`` and the device's used memory as ``nvidia-smi`` reports it, polled in a
    background thread (:class:`DeviceMemoryMonitor`). The output is returned as it is (on the device).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    seconds = []
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        synchronize(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with DeviceMemoryMonitor(device) as monitor:
            for _ in range(repeats):
                start = time.perf_counter()
                out = fn()
                synchronize(device)
                seconds.append(time.perf_counter() - start)
    timing = Timing(out, seconds)
    if device.type == "cuda":
        timing.peak_allocated_gib = torch.cuda.max_memory_allocated(device) / GIB
        timing.peak_reserved_gib = torch.cuda.max_memory_reserved(device) / GIB
        timing.peak_device_gib = monitor.peak_gib
        timing.device_memory_source = monitor.source
    return timing


def matmul_rate(
    device: torch.device, dtype: torch.dtype, size: int, *, warmup: int = 3, repeats: int = 20
) -> float:
    """Measured rate of a ``size³`` matmul in ``dtype`` on ``device``, TFLOP/s (``2·size³`` per product)."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=gen)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=gen)
    with torch.no_grad():
        for _ in range(warmup):
            a @ b
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def _nvidia_smi_reader(device: torch.device) -> Callable[[], int] | None:
    """Used memory of ``device`` in bytes from ``nvidia-smi`` (queried by UUID, so ``CUDA_VISIBLE_DEVICES``
    renumbering does not matter); None if the tool is missing or does not answer."""
    exe = shutil.which("nvidia-smi")
    try:
        uuid = str(torch.cuda.get_device_properties(device).uuid)
    except (AttributeError, RuntimeError):
        return None
    if exe is None:
        return None
    uuid = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
    command = [exe, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", uuid]

    def read() -> int:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout
        return int(float(out.strip().splitlines()[0])) * 2**20  # MiB

    try:
        read()
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return read


def device_memory_reader(device: torch.device) -> tuple[str, Callable[[], int]]:
    """The best available reading of the whole device's used memory (bytes) and its name: NVML through
    ``torch.cuda.device_memory_used`` (what ``nvidia-smi`` shows), else the ``nvidia-smi`` tool, else
    ``torch.cuda.mem_get_info`` (total − free)."""
    try:
        torch.cuda.device_memory_used(device)
        return "nvml", lambda: torch.cuda.device_memory_used(device)
    except Exception:  # pynvml missing or NVML unavailable: fall through to the tool
        pass
    smi = _nvidia_smi_reader(device)
    if smi is not None:
        return "nvidia-smi", smi

    def mem_get_info() -> int:
        free, total = torch.cuda.mem_get_info(device)
        return total - free

    return "cudaMemGetInfo", mem_get_info


class DeviceMemoryMonitor:
    """Context manager: the peak device memory used while it is open, polled in a background thread.

    Reads once on entry and once on exit besides the polls; the caching allocator keeps what it reserved,
    so the device's usage only grows during a forward and the reading at exit already sees the peak of the
    steady state. ``peak_gib`` and ``source`` stay None on the CPU.
    """

    def __init__(self, device: torch.device, interval_s: float = POLL_INTERVAL_S) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak_gib: float | None = None
        self.source: str | None = None
        self._read: Callable[[], int] | None = None
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        assert self._read is not None
        self._peak = max(self._peak, self._read())

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> DeviceMemoryMonitor:
        if self.device.type == "cuda":
            self.source, self._read = device_memory_reader(self.device)
            self._sample()
            self._thread = threading.Thread(target=self._poll, name="device-memory-monitor", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._sample()
            self.peak_gib = self._peak / GIB


@dataclass
class _Clock:
    """Start/stop marks of one section: CUDA events on the GPU, ``perf_counter`` on the CPU."""

    cuda: bool
    marks: list[tuple[object, object]] = field(default_factory=list)

    def mark(self) -> object:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def elapsed_ms(self) -> float:
        if self.cuda:
            return sum(start.elapsed_time(end) for start, end in self.marks)  # type: ignore[attr-defined]
        return sum(1e3 * (end - start) for start, end in self.marks)  # type: ignore[operator]


class ModuleTimer:
    """Time spent in chosen submodules during one call, summed per label (CUDA events or ``perf_counter``).

    ``timer.watch(module, label)`` adds forward hooks; several modules may share a label. Use as
    ``with timer.recording(): model(...)``, then read :meth:`totals_ms`. Hooks are removed on :meth:`close`.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._clocks: dict[str, _Clock] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._open: dict[int, object] = {}
        self._active = False

    def watch(self, module: nn.Module, label: str) -> None:
        clock = self._clocks.setdefault(label, _Clock(self.device.type == "cuda"))

        def before(mod: nn.Module, args: object) -> None:
            if self._active:
                self._open[id(mod)] = clock.mark()

        def after(mod: nn.Module, args: object, output: object) -> None:
            if self._active and id(mod) in self._open:
                clock.marks.append((self._open.pop(id(mod)), clock.mark()))

        self._handles.append(module.register_forward_pre_hook(before))
        self._handles.append(module.register_forward_hook(after))

    @contextmanager
    def recording(self) -> Iterator[None]:
        for clock in self._clocks.values():
            clock.marks.clear()
        self._active = True
        try:
            yield
        finally:
            self._active = False
            synchronize(self.device)

    def totals_ms(self) -> dict[str, float]:
        return {label: clock.elapsed_ms() for label, clock in self._clocks.items()}

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
