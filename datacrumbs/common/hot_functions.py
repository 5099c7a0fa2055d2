"""Functions no job may uprobe in a shared library: the signer's policy, and its default.

A uprobe is a breakpoint in the file's code: every process that maps the file traps into the
kernel on it, whoever the process belongs to, before any uid or cgroup filter can say "not
this one". On a library every process maps (libc), a hot function turns one user's job into a
node-wide slowdown — uprobes on malloc/free made every process on the node ~1,200x slower in
the red team's test (issue 11). So the signer refuses, in shared libraries, the functions that
match ``DATACRUMBS_HOT_FUNCTIONS`` (this default, or the site's own expression; empty: none),
and the configurator leaves them out of what it asks for, with a note. A program's own
executable is not covered: a breakpoint there slows only the processes that run it.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["HOT_FUNCTIONS", "is_shared_library"]

#: Functions so hot in every process that a uprobe on them slows the whole node (measured
#: ~1,200x on malloc/free): the allocator, string and memory functions, and locks, with the
#: ``__``/``__libc_``/``_int_`` internals and IFUNC variants (``__memcpy_avx_unaligned``).
HOT_FUNCTIONS = (
    r"^_*(libc_|int_)?("
    r"malloc|calloc|realloc|reallocarray|free|cfree|memalign|posix_memalign|aligned_alloc|"
    r"valloc|pvalloc|malloc_usable_size|"
    r"mem(cpy|move|set|cmp|chr|rchr|mem|ccpy|pcpy)|bcopy|bzero|explicit_bzero|"
    r"str(len|nlen|cpy|ncpy|cmp|ncmp|casecmp|ncasecmp|chr|rchr|chrnul|dup|ndup|cat|ncat|str|"
    r"spn|cspn|pbrk|tok|tok_r|coll|xfrm)|stp(n)?cpy|wmem\w*|wcs\w*|"
    r"pthread_(mutex|spin|rwlock|cond)_\w+|lll_\w+|pthread_getspecific|pthread_self"
    r")(_\w+)?$"
)

_SHARED_LIBRARY = re.compile(r"\.so(\.[0-9.]+)?$")


def is_shared_library(path: str | Path) -> bool:
    """Whether ``path`` names a shared library (``lib*.so``, ``*.so.6``, ...)."""
    return _SHARED_LIBRARY.search(Path(path).name) is not None
