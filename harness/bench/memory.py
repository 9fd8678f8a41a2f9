"""Peak resident memory of this process over one measured span.

Each backend runs in a fresh worker process, so every backend starts from the same baseline
(interpreter, libraries, one copy of the model). On Linux the kernel's high-water mark (VmHWM) is
reset to the current resident size at the start of each span (`/proc/self/clear_refs`, Linux ≥ 4.0),
after freed heap is handed back to the system, so a span's peak is its own and not an earlier, larger
batch's. Elsewhere only the process's lifetime peak (`ru_maxrss`) is known, which includes every
earlier span of the same worker: batch sizes run in increasing order so it is at worst an overestimate
by what smaller batches left behind.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
import sys
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak() -> None:
    """Start a new span: hand freed heap back, then reset the high-water mark where the system allows."""
    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc is not None and hasattr(ctypes.CDLL(libc), "malloc_trim"):
        ctypes.CDLL(libc).malloc_trim(0)
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        pass  # no /proc: peak_mb falls back to the lifetime peak


def peak_mb() -> float:
    """Peak resident memory in MiB since the last reset (VmHWM), else since the process started."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB elsewhere
