"""Uprobe tracing of a shared library built by the test: counts, arguments, return values."""

from __future__ import annotations

import pytest

from datacrumbs.common.probes import FunctionArgument, Probe, ProbeType
from datacrumbs.common.settings import load_settings
from datacrumbs.ebpf.elf_symbols import ElfSymbols


def _arg(index: int, label: str, num_bytes: int, c_type: str, pointer: bool = False):
    return FunctionArgument(
        index=index, label=label, num_bytes=num_bytes, c_type=c_type, is_pointer=pointer
    )


@pytest.mark.parametrize("uprobe_mode", ["auto", "single"])  # uprobe_multi, perf-event uprobes
def test_library_functions_are_traced_with_arguments_and_returns(
    session, compile_c, public_dir, traced_user, uprobe_mode
):
    lib = compile_c("dcdemo.c", "libdcdemo.so", "-shared", "-fPIC")
    main = compile_c(
        "dcdemo_main.c", "dcdemo_main", f"-L{public_dir}", "-ldcdemo", f"-Wl,-rpath,{public_dir}"
    )
    probes = [
        Probe(
            type=ProbeType.UPROBE,
            name="DEMO",
            binary_path=str(lib),
            functions=["dc_add", "dc_scale", "dc_peek", "dc_missing"],
            function_arguments={
                "dc_add": [_arg(0, "a", 4, "int"), _arg(1, "b", 4, "int")],
                "dc_scale": [_arg(0, "x", 8, "long")],
                "dc_peek": [_arg(0, "value", 4, "int", pointer=True)],
            },
        ),
        Probe(
            type=ProbeType.UPROBE,
            name="GONE",
            binary_path=str(public_dir / "no-such-lib.so"),
            functions=["f"],
        ),
    ]
    with session(probes, uid=traced_user.uid, uprobe_mode=uprobe_mode) as s:
        out = s.run(traced_user, [str(main)]).stdout
    trace = s.trace
    pid = int(out.split()[0])

    reasons = {o.function: o.reason for o in trace.outcomes}
    assert reasons == {
        "dc_add": None,
        "dc_scale": None,
        "dc_peek": None,
        "dc_missing": f"{lib} defines no function dc_missing",
        "f": f"binary {public_dir / 'no-such-lib.so'} does not exist",
    }

    adds = trace.events_of(pid, "dc_add")
    assert [(e["args"]["a"], e["args"]["b"], e["args"]["ret"]) for e in adds] == [
        (-i, 3 * i, 2 * i) for i in range(10)
    ]
    scales = trace.events_of(pid, "dc_scale")
    assert [(e["args"]["x"], e["args"]["ret"]) for e in scales] == [
        (1000 * i, 3000 * i) for i in range(5)
    ]
    peeks = trace.events_of(pid, "dc_peek")
    assert [(e["args"]["value"], e["args"]["ret"]) for e in peeks] == [(41, 42)]
    # the program's own library: the APP layer; the probe file's category in args
    assert {e["cat"] for e in adds + scales + peeks} == {"APP"}
    assert {e["args"]["category"] for e in adds + scales + peeks} == {"DEMO"}
    assert all(e["tid"] == pid and "fhash" not in e["args"] for e in adds + scales + peeks)
    assert len(trace.events) == 16


@pytest.mark.parametrize("uprobe_mode", ["auto", "single"])
def test_an_alias_at_the_same_address_is_refused_and_calls_are_traced_once(
    session, compile_c, traced_user, uprobe_mode
):
    libc = str(load_settings().libc_so)
    symbols = ElfSymbols.read(libc)
    assert symbols.offset("fopen") == symbols.offset("fopen64")  # glibc: one function
    loop = compile_c("stdio_loop.c", "stdio_loop")
    probes = [
        Probe(
            type=ProbeType.UPROBE,
            name="STDIO",
            binary_path=libc,
            functions=["fopen", "fopen64", "fclose"],
        )
    ]
    with session(probes, uid=traced_user.uid, uprobe_mode=uprobe_mode) as s:
        out = s.run(traced_user, [str(loop), "7"]).stdout
    reasons = {o.function: o.reason for o in s.trace.outcomes}
    assert reasons == {
        "fopen": None,
        "fopen64": "fopen64 is at the same address as a function already traced by category "
        "STDIO (an alias)",
        "fclose": None,
    }
    names = [e["name"] for e in s.trace.events_of(int(out))]
    assert (names.count("fopen"), names.count("fopen64"), names.count("fclose")) == (7, 0, 7)


@pytest.mark.parametrize("uprobe_mode", ["auto", "single"])
def test_recursive_calls_are_counted_as_lost_and_the_outer_call_is_whole(
    session, compile_c, traced_user, uprobe_mode
):
    # The in-flight slot is per (thread, function): each outermost call is recorded with its
    # own start and return; the calls inside it are counted as lost, never silently dropped.
    binary = compile_c("recursion.c", "recursion", "-O0")
    probe = Probe(type=ProbeType.UPROBE, name="app", binary_path=str(binary),
                  functions=["dc_fact"])  # fmt: skip
    with session([probe], uid=traced_user.uid, uprobe_mode=uprobe_mode) as s:
        out = s.run(traced_user, [str(binary), "3", "5"]).stdout
    pid = int(out.split()[0])
    calls = s.trace.events_of(pid, "dc_fact")
    assert [e["args"]["ret"] for e in calls] == [120, 120, 120]
    assert s.trace.stats.loss.nested == 3 * 4
    assert s.trace.stats.lost == 12 and len(calls) + s.trace.stats.lost == 15
