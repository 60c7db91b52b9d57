"""glibc's malloc tuned for head training: bounded like a long job needs, without page-faulting every step.

torch's CPU allocator is plain ``malloc``/``free``, and a training step allocates and frees the same
buffers each time (a stack of 8 emobox members: packed frames ``[K, N, D]``, activations and
gradients, from a few hundred KiB to ~30 MiB). Two of glibc's defaults cost us:

* **The dynamic mmap threshold.** glibc raises it each time a large mmapped buffer is freed (up to
  32 MiB), after which batch- and block-sized buffers come from the heap and fragment it:
  frame-head training grew ~26 MiB per doubling of the store (bench/frames_memory.py: 381, 408,
  433 MiB above baseline for 0.5, 1, 2 GiB stores). Pinned at 1 MiB, it is flat (286, 287, 285 MiB).
* **The top pad** (128 KiB). With the threshold pinned, the heap's top is handed back to the system
  after every step and taken again on the next one, and the kernel zero-fills each page on its
  first touch: bench/grouped_sweep.py's 8 emobox configs (full EmoDB, 2 workers) spent 17-21 s of
  system time in page faults. Keeping 256 MiB at the top when trimming: 2-3 s, and the command's
  wall time fell from 48.8 / 50.6 s to 36.8 / 42.6 s in interleaved runs (load ~1.5-2).

The pad only keeps pages that a step already touched, so the resident size stays at the step's high
mark rather than growing; that mark is higher by what the pad keeps: bench/frames_memory.py's peaks
were 351, 376 and 380 MiB with it, 282, 280 and 285 MiB with glibc's 128 KiB. Only glibc has ``mallopt``; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 1 << 20  # buffers from 1 MiB up are mmapped and given back whole when freed
TOP_PAD = 256 << 20  # what a trim leaves at the heap's top


@functools.cache
def tune_malloc() -> bool:
    """Pin the mmap and trim thresholds and raise the top pad, once per process; whether it applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all([mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD), mallopt(M_TRIM_THRESHOLD, MMAP_THRESHOLD),
                mallopt(M_TOP_PAD, TOP_PAD)])
