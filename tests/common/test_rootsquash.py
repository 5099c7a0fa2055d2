"""tests/rootsquash.py emulates an NFS export with root_squash: root is nobody, users are
themselves (with their groups), open files keep their opener's access, a read-only export
refuses every change, SQLite works with several writers at once, and no mount outlives its
``with`` block.

Callers are bare numeric ids (setpriv needs no account; nobody else's processes or files have
them), run with Debian's interpreter: the venv's may sit where they cannot reach it. The source
tree is in ``tmp_path`` (0700 parents: the daemon reaches it as an NFS server does, by handle);
the mount point is in a directory every user can reach.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import json
import os
import pwd
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rootsquash import (
    ANON_GID,
    ANON_UID,
    FSTYPE,
    FUSE_SUPER_MAGIC,
    Identity,
    _mount_type,
    caller_groups,
    rootsquash_mount,
    squash,
    thread_identity,
)

PYTHON = "/usr/bin/python3"  # Debian's: every uid can run it

#: The filesystem capabilities that leave a thread's effective set when its fsuid leaves 0
#: (the kernel's CAP_FS_SET): CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID,
#: LINUX_IMMUTABLE, MKNOD, MAC_OVERRIDE.
CAP_FS_SET = sum(1 << bit for bit in (0, 1, 2, 3, 4, 9, 27, 32))
CAP_DAC_OVERRIDE = 1 << 1
CAP_SETGID, CAP_SETUID = 1 << 6, 1 << 7


@dataclass(frozen=True)
class Caller:
    """Who runs a probe: uid, primary gid and supplementary groups (root: as the test is)."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()

    def argv(self) -> list[str]:
        if self == ROOT:
            return []
        groups = f"--groups={','.join(map(str, self.groups))}" if self.groups else "--clear-groups"
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", groups]


ROOT = Caller(0, 0)

#: What a probe runs: one operation on paths through the mount, printing {"ok": result} or
#: {"errno": "ENAME"}; the caller's umask is 022.
PROBE = r"""
import ctypes, errno, fcntl, json, os, sys
from os import link, mkdir, readlink, rename, rmdir, symlink, unlink
os.umask(0o022)

def read(p):
    with open(p) as f:
        return f.read()

def write(p, text):
    with open(p, "w") as f:
        f.write(text)

def create(p):
    os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))

def owner(p):
    st = os.lstat(p)
    return [st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)]

def listdir(p):
    return sorted(os.listdir(p))

def chmod(p, mode):
    os.chmod(p, int(mode, 8))

def chown(p, uid, gid):
    os.chown(p, int(uid), int(gid))

def truncate(p, size):
    os.truncate(p, int(size))

def touch(p):
    os.utime(p)

def set_times(p, atime, mtime):
    os.utime(p, (int(atime), int(mtime)))

def times(p):
    st = os.stat(p)
    return [int(st.st_atime), int(st.st_mtime)]

def rename_noreplace(a, b):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, a.encode(), -100, b.encode(), 1) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")

def keeps_access(p):
    # The opener's descriptor outlives a chmod to 0400 and an unlink.
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"0123456789")
    os.chmod(p, 0o400)
    os.ftruncate(fd, 4)
    os.unlink(p)
    os.pwrite(fd, b"ab", 4)
    os.fsync(fd)
    size = os.fstat(fd).st_size
    data = os.pread(fd, 100, 0)
    os.close(fd)
    return [size, data.decode(), os.path.exists(p)]

def trylock(p):
    with open(p, "r+") as f:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)

def modify(p, how):
    d = os.path.dirname(p)
    {
        "create": lambda: create(os.path.join(d, "new")),
        "write": lambda: os.close(os.open(p, os.O_WRONLY)),
        "append": lambda: os.close(os.open(p, os.O_WRONLY | os.O_APPEND)),
        "trunc": lambda: os.close(os.open(p, os.O_RDONLY | os.O_TRUNC)),
        "truncate": lambda: os.truncate(p, 0),
        "mkdir": lambda: os.mkdir(os.path.join(d, "newdir")),
        "rmdir": lambda: os.rmdir(d),
        "unlink": lambda: os.unlink(p),
        "rename": lambda: os.rename(p, p + ".moved"),
        "symlink": lambda: os.symlink("x", os.path.join(d, "link")),
        "link": lambda: os.link(p, os.path.join(d, "hardlink")),
        "mknod": lambda: os.mkfifo(os.path.join(d, "fifo")),
        "chmod": lambda: os.chmod(p, 0o777),
        "chown": lambda: os.chown(p, 0, 0),
        "touch": lambda: os.utime(p),
        "setxattr": lambda: os.setxattr(p, "user.x", b"1"),
        "removexattr": lambda: os.removexattr(p, "user.x"),
    }[how]()

op, *args = sys.argv[1:]
try:
    out = {"ok": globals()[op](*args)}
except OSError as e:
    out = {"errno": errno.errorcode[e.errno]}
print(json.dumps(out))
"""

MODIFICATIONS = [
    "create", "write", "append", "trunc", "truncate", "mkdir", "rmdir", "unlink", "rename",
    "symlink", "link", "mknod", "chmod", "chown", "touch", "setxattr", "removexattr",
]  # fmt: skip


def probe(caller: Caller, op: str, *args: object) -> dict[str, object]:
    argv = [*caller.argv(), PYTHON, "-I", "-c", PROBE, op, *map(str, args)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def owner_on(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


def _settled(directory: Path) -> list[str]:
    """The directory's names once libfuse has removed its silly-renamed files: it does so on
    the release the kernel sends after the last close, asynchronously."""
    deadline = time.monotonic() + 10
    while any(n.startswith(".fuse_hidden") for n in os.listdir(directory)):
        assert time.monotonic() < deadline, os.listdir(directory)
        time.sleep(0.05)
    return sorted(os.listdir(directory))


def _unused_ids(count: int, start: int = 46100) -> list[int]:
    """Ids free as uid and as gid: no account, group or process has them."""
    taken = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    for proc in Path("/proc").iterdir():
        try:
            st = proc.stat()
        except OSError:
            continue
        taken |= {st.st_uid, st.st_gid}
    return [n for n in range(start, start + 1000) if n not in taken][:count]


@dataclass(frozen=True)
class People:
    alice: Caller  # owns src/alice (0700)
    bob: Caller
    team: int  # a group: src/team is root:team 0640
    carol: Caller  # primary group team


@pytest.fixture
def root() -> None:
    """Mounting, setpriv and identity switching need root (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (FUSE mounts, setpriv, per-thread identities)")


@pytest.fixture
def people(root: None) -> People:
    alice, bob, carol, team = _unused_ids(4)
    return People(Caller(alice, alice), Caller(bob, bob), team, Caller(carol, team))


@pytest.fixture
def source(tmp_path: Path, people: People) -> Path:
    """The export, written directly (as root):

    secret root 0400 · public root 0644 · alice/ 0700 alice · alice/own 0600 alice ·
    shared/ 1777 root · shared/open 0666 alice · team root:team 0640
    """
    src = tmp_path / "src"
    src.mkdir(mode=0o755)
    src.chmod(0o755)
    a = people.alice
    for name, text, mode, uid, gid in [
        ("secret", "root's secret", 0o400, 0, 0),
        ("public", "public", 0o644, 0, 0),
        ("team", "team's", 0o640, 0, people.team),
    ]:
        (src / name).write_text(text)
        os.chown(src / name, uid, gid)
        (src / name).chmod(mode)
    (src / "alice").mkdir()
    (src / "alice/own").write_text("alice's")
    for path, mode in [(src / "alice/own", 0o600), (src / "alice", 0o700)]:
        os.chown(path, a.uid, a.gid)
        path.chmod(mode)
    (src / "shared").mkdir()
    (src / "shared").chmod(0o1777)
    (src / "shared/open").write_text("open")
    os.chown(src / "shared/open", a.uid, a.gid)
    (src / "shared/open").chmod(0o666)
    return src


@pytest.fixture
def mnt(source: Path, reachable_dir: Path) -> Iterator[Path]:
    with rootsquash_mount(source, reachable_dir / "mnt") as mountpoint:
        yield mountpoint


def test_squash_is_nfsds() -> None:
    """nfsd_setuser's root_squash: 0 becomes the anonymous id as uid, gid and group; other ids
    stay (a root caller keeps its non-root supplementary groups, as on a real export)."""
    assert (ANON_UID, ANON_GID) == (65534, 65534)
    assert squash(0, 0, ()) == Identity(65534, 65534, ())
    assert squash(0, 0, (0,)) == Identity(65534, 65534, (65534,))
    assert squash(0, 0, (27, 0)) == Identity(65534, 65534, (27, 65534))
    assert squash(1000, 1000, (1001, 27)) == Identity(1000, 1000, (27, 1001))
    assert squash(1000, 0, (0, 4)) == Identity(1000, 65534, (4, 65534))
    assert squash(0, 1000, ()) == Identity(65534, 1000, ())
    assert caller_groups(0) == ()
    assert caller_groups(os.getpid()) == tuple(sorted(os.getgroups()))


def _status(task: str) -> dict[str, str]:
    lines = Path(f"/proc/{task}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def test_identity_is_per_thread_and_drops_roots_file_capabilities(
    root: None, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0o400)
    before = _status("thread-self")
    caps = int(before["CapEff"], 16)
    assert caps & CAP_DAC_OVERRIDE, "the test needs a root with CAP_DAC_OVERRIDE"
    inside: dict[str, object] = {}
    switched, checked = threading.Event(), threading.Event()

    def worker() -> None:
        with thread_identity(Identity(ANON_UID, ANON_GID, (4242, 4343))):
            inside["status"] = _status("thread-self")
            try:
                secret.read_text()
                inside["read"] = "ok"
            except OSError as e:
                inside["read"] = e.errno
            switched.set()
            checked.wait(10)
        inside["after"] = _status("thread-self")

    thread = threading.Thread(target=worker)
    thread.start()
    assert switched.wait(10)
    main_meanwhile = _status("thread-self")
    main_read = secret.read_text()
    checked.set()
    thread.join(10)

    status = inside["status"]
    assert isinstance(status, dict)
    assert status["Uid"].split()[3] == "65534"  # real, effective, saved, fs
    assert status["Gid"].split()[3] == "65534"
    assert status["Groups"].split() == ["4242", "4343"]
    assert int(status["CapEff"], 16) == caps & ~CAP_FS_SET
    assert int(status["CapEff"], 16) & (CAP_SETUID | CAP_SETGID)  # kept: it can switch back
    assert inside["read"] == errno.EACCES
    # The main thread never changed: only the worker did.
    assert main_meanwhile["Uid"] == before["Uid"]
    assert main_meanwhile["Groups"] == before["Groups"]
    assert main_meanwhile["CapEff"] == before["CapEff"]
    assert main_read == "x"
    # Back to root afterwards, capabilities and all.
    after = inside["after"]
    assert isinstance(after, dict)
    assert (after["Uid"], after["Groups"], after["CapEff"]) == (
        before["Uid"],
        before["Groups"],
        before["CapEff"],
    )


def test_mount_is_fuse_and_looks_like_one(mnt: Path) -> None:
    assert _mount_type(mnt) == FSTYPE == "fuse.rootsquash"
    f_type = subprocess.run(["stat", "-f", "-c", "%t", str(mnt)], capture_output=True, text=True)
    assert int(f_type.stdout, 16) == FUSE_SUPER_MAGIC == 0x65735546


def test_root_is_nobody(mnt: Path, source: Path, people: People) -> None:
    assert probe(ROOT, "read", mnt / "secret") == {"errno": "EACCES"}
    assert probe(ROOT, "read", mnt / "public") == {"ok": "public"}
    assert probe(ROOT, "listdir", mnt / "alice") == {"errno": "EACCES"}
    assert probe(ROOT, "create", mnt / "alice/by-root") == {"errno": "EACCES"}
    assert probe(ROOT, "read", mnt / "alice/own") == {"errno": "EACCES"}
    assert probe(ROOT, "chown", mnt / "public", 65534, 65534) == {"errno": "EPERM"}
    assert probe(ROOT, "chown", mnt / "shared/open", 0, 0) == {"errno": "EPERM"}
    assert probe(ROOT, "chmod", mnt / "public", "666") == {"errno": "EPERM"}
    assert probe(ROOT, "unlink", mnt / "shared/open") == {"errno": "EPERM"}  # sticky, not its own

    assert probe(ROOT, "create", mnt / "shared/by-root") == {"ok": None}
    assert owner_on(source / "shared/by-root") == (65534, 65534, 0o644)
    assert probe(ROOT, "owner", mnt / "shared/by-root") == {"ok": [65534, 65534, "0o644"]}
    assert probe(ROOT, "chown", mnt / "shared/by-root", 0, 0) == {"errno": "EPERM"}
    assert probe(ROOT, "mkdir", mnt / "shared/dir-by-root") == {"ok": None}
    assert owner_on(source / "shared/dir-by-root") == (65534, 65534, 0o755)
    assert not (source / "alice/by-root").exists()


def test_users_are_themselves(mnt: Path, source: Path, people: People) -> None:
    alice, bob = people.alice, people.bob
    a = mnt / "alice"
    assert probe(alice, "read", a / "own") == {"ok": "alice's"}
    assert probe(alice, "listdir", a) == {"ok": ["own"]}
    assert probe(alice, "create", a / "new") == {"ok": None}
    assert owner_on(source / "alice/new") == (alice.uid, alice.gid, 0o644)
    assert probe(alice, "write", a / "new", "hello") == {"ok": None}
    assert probe(alice, "mkdir", a / "sub") == {"ok": None}
    assert owner_on(source / "alice/sub") == (alice.uid, alice.gid, 0o755)
    assert probe(alice, "rename", a / "new", a / "sub/moved") == {"ok": None}
    assert probe(alice, "read", a / "sub/moved") == {"ok": "hello"}
    assert probe(alice, "symlink", "moved", a / "sub/link") == {"ok": None}
    assert os.readlink(source / "alice/sub/link") == "moved"
    assert probe(alice, "readlink", a / "sub/link") == {"ok": "moved"}
    assert probe(alice, "read", a / "sub/link") == {"ok": "hello"}
    assert probe(alice, "link", a / "sub/moved", a / "sub/hard") == {"ok": None}
    assert (source / "alice/sub/hard").stat().st_nlink == 2
    assert probe(alice, "rename_noreplace", a / "sub/hard", a / "sub/moved") == {"errno": "EEXIST"}
    assert probe(alice, "truncate", a / "sub/hard", 2) == {"ok": None}
    assert probe(alice, "read", a / "sub/moved") == {"ok": "he"}
    assert probe(alice, "chmod", a / "sub/moved", "640") == {"ok": None}
    assert owner_on(source / "alice/sub/moved") == (alice.uid, alice.gid, 0o640)
    assert probe(alice, "set_times", a / "sub/moved", 1000, 2000) == {"ok": None}
    assert probe(alice, "times", a / "sub/moved") == {"ok": [1000, 2000]}
    # Unlinked while open, it is .fuse_hidden* (NFS: .nfs*) until closed, then gone.
    assert probe(alice, "keeps_access", a / "gone") == {"ok": [6, "0123ab", False]}
    assert _settled(source / "alice") == ["own", "sub"]
    for name in ("sub/link", "sub/hard", "sub/moved"):
        assert probe(alice, "unlink", a / name) == {"ok": None}
    assert probe(alice, "rmdir", a / "sub") == {"ok": None}
    assert _settled(source / "alice") == ["own"]

    # Not a capability in sight: alice cannot give her file away, bob cannot touch hers.
    assert probe(alice, "chown", a / "own", bob.uid, bob.gid) == {"errno": "EPERM"}
    assert probe(bob, "read", a / "own") == {"errno": "EACCES"}
    assert probe(bob, "create", a / "bob") == {"errno": "EACCES"}
    assert probe(bob, "read", mnt / "secret") == {"errno": "EACCES"}
    # Write permission lets bob set alice's 0666 file's times to now, not to a time of his.
    assert probe(bob, "touch", mnt / "shared/open") == {"ok": None}
    assert probe(bob, "set_times", mnt / "shared/open", 1, 2) == {"errno": "EPERM"}
    assert probe(bob, "create", mnt / "shared/bob") == {"ok": None}
    assert owner_on(source / "shared/bob") == (bob.uid, bob.gid, 0o644)


def test_supplementary_groups(mnt: Path, people: People) -> None:
    alice, team = people.alice, people.team
    assert probe(Caller(alice.uid, alice.gid, (team,)), "read", mnt / "team") == {"ok": "team's"}
    assert probe(alice, "read", mnt / "team") == {"errno": "EACCES"}
    assert probe(people.carol, "read", mnt / "team") == {"ok": "team's"}  # primary group
    assert probe(people.bob, "read", mnt / "team") == {"errno": "EACCES"}
    # nfsd keeps a squashed root's other groups (it maps only 0), and so does this.
    assert probe(Caller(0, 0, (team,)), "read", mnt / "team") == {"ok": "team's"}
    assert probe(ROOT, "read", mnt / "team") == {"errno": "EACCES"}


def test_xattrs_are_user_namespace_only(mnt: Path, people: People) -> None:
    alice = people.alice
    own = mnt / "alice/own"
    code = "import os, sys; p = sys.argv[1]; os.setxattr(p, 'user.note', b'hi');"
    code += "print(os.getxattr(p, 'user.note').decode(), os.listxattr(p))"
    done = subprocess.run(
        [*alice.argv(), PYTHON, "-I", "-c", code, str(own)], capture_output=True, text=True
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "hi ['user.note']\n", "")
    # Neither a squashed root nor anybody without write permission may set one.
    assert probe(ROOT, "modify", mnt / "public", "setxattr") == {"errno": "EACCES"}
    with pytest.raises(OSError) as refused:
        os.setxattr(mnt / "shared/open", "trusted.x", b"1")
    assert refused.value.errno == errno.EOPNOTSUPP


# SQLite creates a -wal or -shm file with the process's umask and then fchmods it to the
# database's mode: another user opening it in between fails and SQLite goes read-only ("attempt
# to write a readonly database"). The window is SQLite's, wider on FUSE (3 of 15 WAL rounds with
# umask 022 here, none with 0); DELETE's journal is only ever opened by the writer holding the lock.
@pytest.mark.parametrize(("mode", "umask"), [("delete", 0o022), ("wal", 0o000)])
def test_sqlite_with_concurrent_writers(
    mnt: Path, source: Path, people: People, mode: str, umask: int
) -> None:
    """Four processes, root among them, write one database at once; the kernel's locks on the
    FUSE inodes serialise them (the filesystem passes no lock through)."""
    (source / "db").mkdir()
    (source / "db").chmod(0o777)
    db = mnt / "db/jobs.sqlite"
    create = f"""
import os, sqlite3
os.umask(0o022)
db = sqlite3.connect({str(db)!r})
db.execute("CREATE TABLE t (uid, i)")
db.execute("PRAGMA journal_mode={mode}")  # once: a change fails at once while others have it
"""
    subprocess.run([PYTHON, "-I", "-c", create], check=True)
    assert owner_on(source / "db/jobs.sqlite") == (65534, 65534, 0o644)
    assert probe(ROOT, "chmod", db, "666") == {"ok": None}  # root's file is nobody's: nobody may
    rows = 150
    writer = f"""
import os, sqlite3
os.umask({umask})
db = sqlite3.connect({str(db)!r}, timeout=60, isolation_level=None)
for i in range({rows}):
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO t VALUES (?, ?)", (os.getuid(), i))
    db.execute("COMMIT")
db.close()
"""
    callers = [ROOT, people.alice, people.bob, people.carol]
    writers = [
        subprocess.Popen(
            [*c.argv(), PYTHON, "-I", "-c", writer], stderr=subprocess.PIPE, text=True, cwd="/"
        )
        for c in callers
    ]
    results = [(w.wait(timeout=300), w.stderr.read() if w.stderr else "") for w in writers]
    assert results == [(0, "")] * len(callers)
    check = f"""
import json, sqlite3
db = sqlite3.connect({str(db)!r})
print(json.dumps([db.execute("PRAGMA integrity_check").fetchall(),
                  db.execute("SELECT uid, count(*) FROM t GROUP BY uid").fetchall()]))
"""
    done = subprocess.run([PYTHON, "-I", "-c", check], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [[["ok"]], sorted([c.uid, rows] for c in callers)]


def test_locks_are_kept_by_the_kernel(mnt: Path, source: Path) -> None:
    """With no lock operation in the filesystem, the kernel locks the FUSE inode itself: the
    mount's users exclude each other, /proc/locks shows the lock on the FUSE device, and a lock
    on the source file itself is a different lock (unlike NFS, whose locks live on the server)."""
    path = mnt / "shared/open"
    with open(path, "r+") as held:
        fcntl.lockf(held, fcntl.LOCK_EX)
        assert probe(ROOT, "trylock", path) == {"errno": "EAGAIN"}
        st = path.stat()
        where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        locks = Path("/proc/locks").read_text().splitlines()
        assert any(f"POSIX  ADVISORY  WRITE {os.getpid()} {where} " in line for line in locks)
        assert st.st_ino == (source / "shared/open").stat().st_ino  # use_ino
        assert probe(ROOT, "trylock", source / "shared/open") == {"ok": None}
    assert probe(ROOT, "trylock", path) == {"ok": None}


def test_read_only_refuses_every_change(source: Path, reachable_dir: Path, people: People) -> None:
    alice = people.alice
    (source / "alice/sub").mkdir()
    os.chown(source / "alice/sub", alice.uid, alice.gid)
    os.setxattr(source / "alice/own", "user.x", b"1")
    before = sorted(str(p.relative_to(source)) for p in source.rglob("*"))
    with rootsquash_mount(source, reachable_dir / "ro", read_only=True) as ro:
        # Below the mount's root: rmdir of the root itself would be EBUSY, whatever the mount.
        callers = [(alice, "alice/own"), (alice, "shared/open"), (ROOT, "shared/open"),
                   (people.bob, "shared/open")]  # fmt: skip
        for who, target in callers:
            refused = {how: probe(who, "modify", ro / target, how) for how in MODIFICATIONS}
            assert refused == {how: {"errno": "EROFS"} for how in MODIFICATIONS}, (who, target)
        assert probe(alice, "rmdir", ro / "alice/sub") == {"errno": "EROFS"}
        # Reading is as before, root squashed and all.
        assert probe(alice, "read", ro / "alice/own") == {"ok": "alice's"}
        assert probe(ROOT, "read", ro / "public") == {"ok": "public"}
        assert probe(ROOT, "read", ro / "secret") == {"errno": "EACCES"}
        assert probe(ROOT, "listdir", ro / "alice") == {"errno": "EACCES"}
        # The mount itself is rw, as a client's mount of a read-only export is.
        assert not os.statvfs(ro).f_flag & os.ST_RDONLY
    assert sorted(str(p.relative_to(source)) for p in source.rglob("*")) == before
    assert (source / "alice/own").read_text() == "alice's"


def _daemons(mountpoint: Path) -> list[int]:
    """Processes whose command line names ``mountpoint`` (the daemon's does)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(mountpoint).encode() in argv:
            found.append(int(proc.name))
    return found


def test_no_mount_outlives_its_block(source: Path, reachable_dir: Path) -> None:
    point = reachable_dir / "mnt"
    with pytest.raises(RuntimeError, match="test failure"), rootsquash_mount(source, point) as m:
        assert _mount_type(m) == FSTYPE and _daemons(m)
        raise RuntimeError("test failure")
    assert _mount_type(point) is None and not _daemons(point)

    # Busy: a process sits in it. The unmount is lazy and the daemon ended all the same.
    with rootsquash_mount(source, point) as m:
        sitter = subprocess.Popen(["sleep", "60"], cwd=m)
    try:
        assert _mount_type(point) is None and not _daemons(point)
    finally:
        sitter.kill()
        sitter.wait()

    missing = reachable_dir / "missing"
    with pytest.raises(RuntimeError, match="is not a directory"), rootsquash_mount(missing, point):
        pass
    assert _mount_type(point) is None and not _daemons(point)
