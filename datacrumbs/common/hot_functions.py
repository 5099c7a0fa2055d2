"""Functions no job may uprobe in a shared library: the signer's policy, and its default.

A uprobe is a breakpoint in the file's code: every process that maps the file traps into the
kernel on it, whoever the process belongs to, before any uid or cgroup filter can say "not
this one". On a library every process maps (libc), a hot function turns one user's job into a
node-wide slowdown — uprobes on malloc/free made every process on the node ~1,200x slower in
the red team's test (issue 11). So the signer refuses, in shared libraries, the functions that
match ``DATACRUMBS_HOT_FUNCTIONS`` (this default, or the site's own expression; empty: none),
and the configurator leaves them out of what it asks for, with a note. A program's own
executable is not covered: a breakpoint there slows only the processes that run it.

What no list can foresee — a function that is hot only in this job, or a library function the
list misses — is caught at run time: the daemon counts every hit of the job's function probes,
in every process, and detaches the busiest once the job passes ``DATACRUMBS_UPROBE_HIT_LIMIT``
hits per second (:data:`UPROBE_HIT_LIMIT` by default).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["HOT_FUNCTIONS", "UPROBE_HIT_LIMIT", "is_shared_library"]

#: Hits per second of one job's function probes on one node before the busiest are detached.
#: A uprobe hit costs a trap into the kernel and back (a few microseconds with its return
#: probe): 100,000 hits/s is a few tenths of one core, spread over whoever runs the code.
UPROBE_HIT_LIMIT = 100_000

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
