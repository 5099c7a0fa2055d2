"""Run one command under another kernel: a QEMU guest over this machine's own filesystem.

Why a guest and not a container: the kernel is what is under test (its verifier, its helpers,
its probe kinds), and a container shares the host's. Why QEMU's emulation (TCG): this machine
kind's ``/dev/kvm`` is PVM and boots no stock kernel (``../shared/reference/kernel-matrix.md``).

The guest boots a Debian kernel unpacked by ``scripts/kernels`` into ``.kernels/<series>/``
with a tiny busybox initramfs, which loads the 9p and overlay modules, mounts the host's ``/``
read-only over virtio-9p with a tmpfs overlay on top (the guest's writes vanish with it),
mounts one result directory read-write at its host path, and ``switch_root``\\ s into the
overlay (``chroot`` would leave the overlay's prefix in the kernel's path walks). There the
host's own interpreter, ``.venv`` and BPF object run unchanged. The command's exit status is
written into the result directory; a guest that never writes one (no boot, a panic, a hang)
is retried once, then reported with the tail of its console.

    python tests/kernels/guest.py --kernel 6.1 [--timeout S] [--env NAME=VALUE ...] -- CMD ...

One vCPU: with two, one run in two oopsed under TCG (live code patching, ``int3``).
"""

from __future__ import annotations

import argparse
import lzma
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / ".kernels"
BUSYBOX = Path("/bin/busybox")
#: the modules the initramfs loads (with what they depend on), where the kernel has them as
#: modules (6.12 builds virtio_pci in)
MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
CONSOLE_TAIL = 60  # lines of console shown when a guest fails


class GuestError(RuntimeError):
    """The guest could not run the command (no kernel, no boot, no exit status)."""


@dataclass(frozen=True)
class Kernel:
    series: str
    root: Path  # the unpacked package
    release: str  # uname -r
    package: str

    @property
    def image(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @classmethod
    def find(cls, series: str) -> Kernel:
        root = KERNELS / series
        try:
            package = (root / ".package").read_text().strip()
            (release,) = os.listdir(root / "lib" / "modules")
        except (OSError, ValueError) as exc:
            raise GuestError(
                f"kernel {series} is not unpacked in {root} (run scripts/kernels): {exc}"
            ) from exc
        return cls(series, root, release, package)

    def module_files(self) -> list[Path]:
        """The module files to insert, in dependency order, each once (``modprobe -d``)."""
        ordered: list[Path] = []
        for name in MODULES:
            out = subprocess.run(
                ["modprobe", "-d", str(self.root), "-S", self.release, "--show-depends", name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for line in out.splitlines():
                parts = line.split()
                if parts and parts[0] == "insmod" and Path(parts[1]) not in ordered:
                    ordered.append(Path(parts[1]))
        return ordered


_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod /modules/$m || echo "guest: insmod $m failed"; done
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /lower || exec poweroff -f
mount -t tmpfs -o size=75% rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot
mkdir -p /newroot{results}
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /newroot{results}
cp /stage2 /newroot/dc-guest-stage2
umount /proc /sys /dev
exec switch_root /newroot /bin/sh /dc-guest-stage2
"""

_STAGE2 = """set +e
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs shm /dev/shm
mount -t tmpfs run /run
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up 2>/dev/null
hostname {hostname}
cd {cwd}
export {env}
{command} </dev/null >{results}/output 2>&1
echo $? >{results}/rc.tmp && mv {results}/rc.tmp {results}/rc
sync
echo o >/proc/sysrq-trigger
sleep 10
"""


def _initramfs(kernel: Kernel, work: Path, results: Path, stage2: str) -> Path:
    tree = work / "initramfs"
    for sub in ("bin", "modules", "proc", "sys", "dev"):
        (tree / sub).mkdir(parents=True)
    shutil.copy2(BUSYBOX, tree / "bin" / "busybox")
    order = []
    for path in kernel.module_files():
        name = path.name.removesuffix(".xz")  # Debian's 6.1 ships .ko, 6.12 .ko.xz
        data = path.read_bytes()
        if path.suffix == ".xz":  # busybox's insmod takes it uncompressed
            data = lzma.decompress(data)
        (tree / "modules" / name).write_bytes(data)
        order.append(name)
    (tree / "modules" / "order").write_text("\n".join(order) + "\n")
    init = tree / "init"
    init.write_text(_INIT.replace("{results}", str(results)))
    init.chmod(0o755)
    (tree / "stage2").write_text(stage2)
    files = subprocess.run(
        ["find", ".", "-mindepth", "1"], cwd=tree, capture_output=True, check=True
    ).stdout
    image = work / "initramfs.cpio"
    with image.open("wb") as out:
        subprocess.run(
            [str(BUSYBOX), "cpio", "-o", "-H", "newc"],
            cwd=tree,
            input=files,
            stdout=out,
            stderr=subprocess.DEVNULL,
            check=True,
        )
    return image


def _qemu(kernel: Kernel, initramfs: Path, results: Path, memory: str) -> list[str]:
    return [
        "qemu-system-x86_64",
        "-accel", "tcg,thread=multi,tb-size=256",
        "-cpu", "max", "-smp", "1", "-m", memory, "-M", "pc",
        "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
        "-serial", "stdio", "-no-reboot",
        "-kernel", str(kernel.image), "-initrd", str(initramfs),
        "-append", "console=ttyS0 quiet loglevel=1 panic=-1 oops=panic",
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        "-fsdev", f"local,id=results,path={results},security_model=none",
        "-device", "virtio-9p-pci,fsdev=results,mount_tag=results",
    ]  # fmt: skip


def _follow(
    proc: subprocess.Popen[bytes], output: Path, deadline: float, stream: TextIO | None
) -> tuple[int, bool]:
    """Wait for the guest to power off (killed at ``deadline``), copying what the command
    writes to ``stream`` meanwhile; how many characters were copied, and whether it was
    killed."""
    shown = 0
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            return shown, True
        time.sleep(1)
        if stream is not None and output.exists():
            text = output.read_text(errors="replace")
            stream.write(text[shown:])
            stream.flush()
            shown = len(text)
    return shown, False


@dataclass(frozen=True)
class Outcome:
    rc: int
    output: str  # the command's stdout and stderr
    seconds: float


def run(
    series: str,
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 1800,
    memory: str = "2G",
    attempts: int = 2,
    stream: TextIO | None = None,
) -> Outcome:
    """Run ``command`` as root in a guest booted from kernel ``series``; its exit status and
    output (also written to ``stream`` as it comes). Raises :class:`GuestError` when no
    attempt ran it to an exit status."""
    kernel = Kernel.find(series)
    if shutil.which("qemu-system-x86_64") is None:
        raise GuestError("qemu-system-x86_64 is not installed (scripts/bootstrap installs it)")
    exports = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/root"}
    exports |= env or {}
    console_tail = ""
    for attempt in range(1, attempts + 1):
        with tempfile.TemporaryDirectory(prefix="dc-guest-") as tmp:
            work = Path(tmp)
            results = work / "results"
            results.mkdir()
            stage2 = _STAGE2.format(
                # the host's name: its installations are made for it (summary.host)
                hostname=shlex.quote(socket.gethostname()),
                cwd=shlex.quote(str(cwd)),
                env=" ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items()),
                command=shlex.join(command),
                results=shlex.quote(str(results)),
            )
            image = _initramfs(kernel, work, results, stage2)
            start = time.monotonic()
            console_log = work / "console"
            with console_log.open("wb") as console_out:
                proc = subprocess.Popen(
                    _qemu(kernel, image, results, memory),
                    stdin=subprocess.DEVNULL,
                    stdout=console_out,
                    stderr=subprocess.STDOUT,
                )
                shown, killed = _follow(proc, results / "output", start + timeout, stream)
            console = console_log.read_text(errors="replace")
            if killed:
                console += f"\n[guest: killed after {timeout:.0f} s]"
            seconds = time.monotonic() - start
            rc_file = results / "rc"
            output = (
                (results / "output").read_text(errors="replace")
                if (results / "output").exists()
                else ""
            )
            if stream is not None and len(output) > shown:
                stream.write(output[shown:])
                stream.flush()
            if rc_file.exists():
                return Outcome(int(rc_file.read_text().strip() or "255"), output, seconds)
            console_tail = "\n".join(console.replace("\r", "").splitlines()[-CONSOLE_TAIL:])
            if output:
                console_tail += "\n[command output so far]\n" + output[-4000:]
            print(
                f"guest {series} ({kernel.package}): attempt {attempt} gave no exit status "
                f"after {seconds:.0f} s",
                file=sys.stderr,
            )
    raise GuestError(
        f"kernel {series} ({kernel.package}): no exit status in {attempts} attempts; "
        f"console tail:\n{console_tail}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel", required=True, help="a series under .kernels/ (6.1, 6.12)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--memory", default="2G")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    try:
        outcome = run(
            args.kernel,
            args.command,
            env=env,
            timeout=args.timeout,
            memory=args.memory,
            stream=sys.stdout,
        )
    except GuestError as exc:
        print(f"guest: {exc}", file=sys.stderr)
        return 125
    print(f"guest {args.kernel}: exit status {outcome.rc} in {outcome.seconds:.0f} s")
    return outcome.rc


if __name__ == "__main__":
    raise SystemExit(main())
