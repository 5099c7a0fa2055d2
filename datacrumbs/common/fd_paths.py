"""Walking and creating directories by file descriptor, for root acting in users' directories.

The daemon runs as root and writes each trace into a directory that its settings name and that
the job user may be able to write (a per-user trace directory). Anything done there by path
can be redirected: the user swaps a directory for a symbolic link between root's checks and
root's use of the path, and root creates, renames or chowns a file of the user's choosing (the
probe secret, say). So every step here holds the directory it is in as a file descriptor, opens
the next component relative to it with ``O_NOFOLLOW``, and creates with ``mkdirat``. A symbolic
link is followed only where no one but root can have placed it: the link is root's own and sits
in a root-owned directory that others cannot write (or a sticky one, where they cannot replace
root's entries) — the way ``/var/run`` or a site's ``/p/lustre`` link is followed, and a user's
planted link is not.

The job user's own part of the tree (``%USER%`` and below, in the default trace directory) is
walked and created *as the job user* (their filesystem identity: :mod:`fs_identity`), 0700:
their traces are theirs to index and analyse in place (DFTracer's tools write their
``.dftindex`` next to a trace), and a directory on a root-squashed export, or one only the user
may enter, is reached as the user reaches it. Where the user cannot create their own directory
(it belongs in a root-owned tree, the default one under the prefix), root creates it and hands it
over. The walk is no different there: a link in a directory the user owns is never followed.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import nullcontext
from pathlib import Path

from datacrumbs.common.errors import DatacrumbsError
from datacrumbs.common.fs_identity import Identity, acting_as

__all__ = ["open_directory"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_LINKS = 40  # as the kernel's own limit on links followed in one lookup


def _root_placed(parent: int, name: str, link: os.stat_result) -> bool:
    """Whether the symlink ``name`` in directory ``parent`` can only have been placed by root."""
    directory = os.fstat(parent)
    others_write = directory.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    sticky = directory.st_mode & stat.S_ISVTX
    return link.st_uid == 0 and directory.st_uid == 0 and (not others_write or bool(sticky))


def open_directory(
    path: Path,
    mode: int = 0o755,
    *,
    owned_from: int | None = None,
    owner: Identity | None = None,
    owned_mode: int = 0o700,
) -> int:
    """An ``O_DIRECTORY`` descriptor of the absolute ``path``; missing components are created
    with ``mode`` (exactly, whatever the umask) — or, from the ``owned_from``-th component of
    ``path`` on (0: the first below ``/``), walked and created as ``owner``, with
    ``owned_mode``. Raises :class:`DatacrumbsError` naming the component when one is a symbolic
    link a user could have placed, or not a directory, or cannot be entered."""
    if not path.is_absolute():
        raise DatacrumbsError(f"{path}: not an absolute path")
    fd = os.open("/", _DIR_FLAGS)
    try:
        first = len(path.parts) if owned_from is None or owner is None else owned_from
        # (component, created for the owner?); a link's target parts are root's, never owned
        pending = [(name, i >= first) for i, name in enumerate(path.parts[1:])]
        links = 0
        walked = Path("/")
        while pending:
            name, owned = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                raise DatacrumbsError(f"{path}: '..' is not allowed")
            try:
                with acting_as(owner) if owned else nullcontext():
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                info = _make(fd, name, owned_mode if owned else mode, walked / name,
                             owner if owned else None)  # fmt: skip
            except OSError as exc:
                raise DatacrumbsError(f"{walked / name}: {exc.strerror}") from None
            if stat.S_ISLNK(info.st_mode):
                if not _root_placed(fd, name, info) or links >= _MAX_LINKS:
                    raise DatacrumbsError(
                        f"{walked / name} is a symbolic link that a user could have placed; "
                        "not following it"
                    )
                links += 1
                target = Path(os.readlink(name, dir_fd=fd))
                if target.is_absolute():
                    os.close(fd)
                    fd = os.open("/", _DIR_FLAGS)
                    walked = Path("/")
                pending[:0] = [(part, False) for part in target.parts if part != "/"]
                continue
            if not stat.S_ISDIR(info.st_mode):
                raise DatacrumbsError(f"{walked / name} is not a directory")
            try:
                with acting_as(owner) if owned else nullcontext():
                    child = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:  # replaced meanwhile, or not ours to enter
                raise DatacrumbsError(f"{walked / name}: {exc.strerror}") from None
            os.close(fd)
            fd, walked = child, walked / name
        return fd
    except BaseException:
        os.close(fd)
        raise


def _roots_own(directory: int) -> bool:
    """Whether the open ``directory`` is root's and no one else may write it."""
    info = os.fstat(directory)
    return info.st_uid == 0 and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _make(
    parent: int, name: str, mode: int, shown: Path, owner: Identity | None = None
) -> os.stat_result:
    """Create directory ``name`` in ``parent`` with exactly ``mode``: as ``owner`` when given,
    else (or where ``owner`` may not create it) as this process, handing it to ``owner`` on
    the open directory, never by path; its stat."""
    if owner is not None:
        try:
            with acting_as(owner):
                # Made meanwhile (another node's daemon, on a shared tree)? Then it is checked
                # like any other entry, as the owner: root may not even be allowed to see it.
                try:
                    os.mkdir(name, mode, dir_fd=parent)
                except FileExistsError:
                    pass
                else:
                    child = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
                    try:
                        os.fchmod(child, mode)  # exactly, whatever the umask
                    finally:
                        os.close(child)
                return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            # Only in root's own tree (no one else may write it) does root make the owner's
            # directory and hand it over: elsewhere it would be made where another user rules.
            if exc.errno not in (errno.EACCES, errno.EPERM) or not _roots_own(parent):
                raise DatacrumbsError(f"cannot create {shown}: {exc.strerror}") from None
    try:
        os.mkdir(name, mode, dir_fd=parent)
    except FileExistsError:
        pass  # made meanwhile (by another run, or a user): checked like any other entry
    except OSError as exc:
        raise DatacrumbsError(f"cannot create {shown}: {exc.strerror}") from None
    else:
        try:
            child = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
        except OSError as exc:  # swapped for a link (ELOOP) right after it was made
            raise DatacrumbsError(f"{shown}: {exc.strerror}") from None
        try:
            # the mode first: once the directory is the user's, changing it needs CAP_FOWNER,
            # which the unit does not keep
            os.fchmod(child, mode)
            if owner is not None:
                os.fchown(child, owner.uid, owner.gid)
        except OSError as exc:
            raise DatacrumbsError(f"cannot hand {shown} to its user: {exc.strerror}") from None
        finally:
            os.close(child)
    return os.stat(name, dir_fd=parent, follow_symlinks=False)
