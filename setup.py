"""Build hooks: the wheel carries a prebuilt, CO-RE ``datacrumbs/ebpf/datacrumbs.bpf.o``, and
two small CPython extensions, also built by editable installs: the trace formatter
``datacrumbs.trace._format`` and the ring-buffer walk ``datacrumbs.ebpf._ringwalk``.

The object is compiled once, where the wheel is built (clang, bpftool and a kernel with BTF),
so that compute nodes installing the wheel need no compiler: CO-RE relocates it on any kernel
with BTF. ``datacrumbs_install`` rebuilds it only when asked or when the shipped one does not
load. Editable installs skip it (the installer builds and caches the object itself then).
Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
OBJECT = Path("datacrumbs/ebpf/datacrumbs.bpf.o")


class BuildPyWithBpfObject(build_py):
    """``build_py`` that also compiles the BPF programs into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        # Loaded by path: the package's own __init__ must not run inside the build backend.
        spec = importlib.util.spec_from_file_location("_dc_bpf_build",
                                                      HERE / "datacrumbs/ebpf/build.py")
        assert spec is not None and spec.loader is not None
        build = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(build)
        try:
            cache = Path(self.get_finalized_command("build").build_temp) / "bpf"
            built = build.build_bpf_object(cache)
        except build.BuildError as exc:
            raise SystemExit(f"datacrumbs wheel: {exc} (scripts/bootstrap installs clang and "
                             "bpftool)") from None
        target = Path(self.build_lib) / OBJECT
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)


FORMATTER = Extension(
    "datacrumbs.trace._format",
    sources=["datacrumbs/trace/_format.c"],
    depends=["datacrumbs/ebpf/bpf/dc_records.h"],
    extra_compile_args=["-O2", "-Wall", "-Werror"],
    py_limited_api=True,
)

RING_WALK = Extension(
    "datacrumbs.ebpf._ringwalk",
    sources=["datacrumbs/ebpf/_ringwalk.c"],
    extra_compile_args=["-O2", "-Wall", "-Werror"],
    py_limited_api=True,
)

# Both use the stable ABI (Py_LIMITED_API 3.11): the wheel is tagged abi3 and its extensions
# load in any CPython from 3.11 on (a compute node's newer interpreter included).
setup(
    cmdclass={"build_py": BuildPyWithBpfObject},
    ext_modules=[FORMATTER, RING_WALK],
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
