"""Handing freed memory back to the operating system after a large answer.

CPython returns the small objects of an answer (dicts, strings: most of a whole job's) to its own arenas, and
frees an arena only when every object in it is gone; what it frees, and every larger block, goes back to the C
allocator, which keeps it for later unless told otherwise. With glibc, `malloc_trim(0)` returns the free memory
at the top of the heap and every free page inside it (madvise): what is measured in bench/README.md, "Memory
after large answers". Elsewhere (musl, macOS) there is no such call and this does nothing."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        library = ctypes.CDLL(name) if name is not None else None
        trim = getattr(library, "malloc_trim", None)
    except OSError:
        return None
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_free_memory() -> bool:
    """Return the C allocator's free memory to the operating system (glibc's malloc_trim, which runs without
    the GIL: other threads go on meanwhile); whether there was such a call to make."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
