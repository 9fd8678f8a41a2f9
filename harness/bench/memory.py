"""Peak resident memory of this process and its descendants over one measured span.

Each backend runs in a fresh worker process, so every backend starts from the same baseline
(interpreter, libraries, one copy of the model). An engine that runs the model in processes of its
own (vLLM: engine core and model worker) counts with them: the span's peak is the sum of each
process's peak. On Linux the kernel's high-water mark (VmHWM) is reset to the current resident size
at the start of each span (`/proc/PID/clear_refs`, Linux ≥ 4.0), after freed heap is handed back to
the system, so a span's peak is its own and not an earlier, larger batch's. Elsewhere only this
process's lifetime peak (`ru_maxrss`) is known, which includes every earlier span of the same worker:
batch sizes run in increasing order so it is at worst an overestimate by what smaller batches left
behind. On a GPU (`device` cuda) the span's peak is what torch allocated on that device instead:
the model and its activations live there, and host memory says little about serving cost.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import resource
import sys
from pathlib import Path

PROC = Path("/proc")


def process_tree(root: int | None = None) -> list[int]:
    """This process (or `root`) and every live descendant, from /proc; empty without /proc."""
    parents: dict[int, list[int]] = {}
    try:
        for stat in PROC.glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (name)": state, ppid, ...
            except OSError:
                continue  # the process ended meanwhile
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    except OSError:
        return []
    tree, todo = [], [root or os.getpid()]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += parents.get(pid, [])
    return tree


def reset_peak(device: str = "cpu") -> None:
    """Start a new span: hand freed heap back, then reset the high-water marks where the system allows."""
    gc.collect()
    if device != "cpu":
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        return
    libc = ctypes.util.find_library("c")
    if libc is not None and hasattr(ctypes.CDLL(libc), "malloc_trim"):
        ctypes.CDLL(libc).malloc_trim(0)
    for pid in process_tree():
        try:
            (PROC / str(pid) / "clear_refs").write_text("5")
        except OSError:
            pass  # no /proc, or the process ended: peak_mb falls back to what it can read


def _vm_hwm_kib(pid: int) -> int | None:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_mb(device: str = "cpu") -> float:
    """Peak resident memory in MiB since the last reset (sum of VmHWM over the tree), else this process's
    peak since it started; on a GPU, the peak torch allocated there since the last reset."""
    if device != "cpu":
        import torch

        return torch.cuda.max_memory_allocated(device) / 2**20
    peaks = [kib for kib in map(_vm_hwm_kib, process_tree()) if kib is not None]
    if peaks:
        return sum(peaks) / 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB elsewhere
