"""The names and layers DFTracer's tools class events by (``common/dftracer_names.py``), for
the library file names distributions really ship and the names the kernel gives calls."""

from __future__ import annotations

import pytest

from datacrumbs.common.dftracer_names import (
    BYTE_RETURNS,
    layer_of,
    syscall_call_name,
    uring_call_name,
)

#: Library file names as Debian, RHEL, Spack, Open MPI, MPICH, Intel MPI and Cray ship them.
LIBRARIES = {
    "/usr/lib/x86_64-linux-gnu/libc.so.6": "POSIX",
    "/lib64/libc-2.28.so": "POSIX",
    # HDF5: Debian's serial and MPI builds (issue 26, M7), their high-level and C++ and
    # Fortran companions, RHEL's and Spack's own name
    "/usr/lib/x86_64-linux-gnu/hdf5/serial/libhdf5_serial.so.103": "HDF5",
    "/usr/lib/x86_64-linux-gnu/libhdf5_serial.so.103.3.0": "HDF5",
    "/usr/lib/x86_64-linux-gnu/libhdf5_openmpi.so.103": "HDF5",
    "/usr/lib/x86_64-linux-gnu/libhdf5_mpich.so.103": "HDF5",
    "/usr/lib/x86_64-linux-gnu/libhdf5_serial_hl.so.100": "HDF5",
    "/usr/lib64/libhdf5.so.103": "HDF5",
    "/usr/lib64/openmpi/lib/libhdf5.so.200": "HDF5",
    "/opt/spack/hdf5-1.14.3/lib/libhdf5.so.310.3.0": "HDF5",
    "/opt/spack/hdf5-1.14.3/lib/libhdf5_hl.so": "HDF5",
    "/opt/spack/hdf5-1.14.3/lib/libhdf5_cpp.so.310": "HDF5",
    "/opt/spack/hdf5-1.14.3/lib/libhdf5_fortran.so.310": "HDF5",
    "/opt/hdf5/lib/libhdf5-1.14.so": "HDF5",
    "/opt/hdf5/lib/libhdf5.so": "HDF5",
    # MPI
    "/usr/lib/x86_64-linux-gnu/libmpi.so.40": "MPI",
    "/usr/lib/x86_64-linux-gnu/libmpich.so.12": "MPI",
    "/usr/lib/x86_64-linux-gnu/openmpi/lib/libmpi_cxx.so.40": "MPI",
    "/usr/lib/x86_64-linux-gnu/openmpi/lib/libmpi_mpifh.so.40": "MPI",
    "/opt/intel/mpi/lib/libmpifort.so.12": "MPI",
    "/opt/cray/pe/lib64/libmpi_gnu_91.so.12": "MPI",
    "/opt/mpi/lib/libpmpi.so.12": "MPI",
    # NetCDF and PnetCDF
    "/usr/lib/x86_64-linux-gnu/libnetcdf.so.19": "NETCDF",
    "/usr/lib/x86_64-linux-gnu/netcdf/mpi/libnetcdf_mpi.so.19": "NETCDF",
    "/usr/lib/x86_64-linux-gnu/libnetcdff.so.7": "NETCDF",
    "/usr/lib/x86_64-linux-gnu/libnetcdf_c++4.so.1": "NETCDF",
    "/usr/lib/x86_64-linux-gnu/libpnetcdf.so.4": "PNETCDF",
    # not a layer: names that only start like one, static archives, programs
    "/usr/lib/x86_64-linux-gnu/libcrypto.so.3": "APP",
    "/usr/lib/x86_64-linux-gnu/libcap.so.2": "APP",
    "/usr/lib/x86_64-linux-gnu/libmpfr.so.6": "APP",
    "/opt/hdf5/lib/libhdf5.a": "APP",
    "/opt/hdf5/bin/h5dump": "APP",
    "/home/alice/libhdf5": "APP",
}


@pytest.mark.parametrize("path", LIBRARIES)
def test_each_library_name_is_its_layer(path: str) -> None:
    assert layer_of(path, "somefunction") == LIBRARIES[path]


def test_the_c_library_s_buffered_io_is_stdio() -> None:
    assert layer_of("/lib64/libc.so.6", "fwrite") == "STDIO"
    assert layer_of("/lib64/libc.so.6", "write") == "POSIX"
    assert layer_of(None, "main") == "APP"


def test_syscalls_are_named_as_libc_and_the_tools_name_them() -> None:
    got = {s: syscall_call_name(s) for s in ("sendfile64", "pread64", "openat", "read")}
    assert got == {"sendfile64": "sendfile", "pread64": "pread", "openat": "open", "read": "read"}
    assert "sendfile" in BYTE_RETURNS


def test_io_uring_requests_are_named_as_the_calls_they_do() -> None:
    opcodes = ("READ", "WRITE", "READV", "WRITEV", "READ_FIXED", "WRITE_FIXED",
               "READ_MULTISHOT", "FSYNC", "OPENAT", "OPENAT2", "STATX", "CLOSE", "UNLINKAT",
               "SPLICE", "NOP")  # fmt: skip
    assert [uring_call_name(op) for op in opcodes] == [
        "read", "write", "readv", "writev", "read", "write", "read", "fsync", "open", "open",
        "stat", "close", "unlink", "splice", "nop",
    ]  # fmt: skip
    # every request that moves bytes has a name whose ret the summary and the tools sum
    assert {uring_call_name(op) for op in opcodes[:7]} <= BYTE_RETURNS
