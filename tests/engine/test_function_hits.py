"""Function probes count their hits — in every process scoped to the node, in the job's
scoped to it — and one function can be detached while the others — in single mode its own
links, in multi mode its binary's shared link or each process's, attached again — keep
tracing (the daemon's runaway-probe limit stands on these two)."""

from __future__ import annotations

import subprocess

import pytest
from engine_support import as_user

from datacrumbs.common.probes import Probe, ProbeType
from datacrumbs.ebpf.engine import TargetOutcome


@pytest.mark.parametrize("scope", ["job", "node"])
@pytest.mark.parametrize("uprobe_mode", ["auto", "single"])  # uprobe_multi, perf-event uprobes
def test_hits_are_counted_and_one_function_detaches_alone(
    session, compile_c, public_dir, traced_user, intruder_user, uprobe_mode, scope
):
    lib = compile_c("dcdemo.c", "libdcdemo.so", "-shared", "-fPIC")
    main = compile_c(
        "dcdemo_main.c", "dcdemo_main", f"-L{public_dir}", "-ldcdemo", f"-Wl,-rpath,{public_dir}"
    )
    probe = Probe(
        type=ProbeType.UPROBE,
        name="DEMO",
        binary_path=str(lib),
        functions=["dc_add", "dc_scale", "dc_peek"],
    )

    def run(user) -> int:  # type: ignore[no-untyped-def]
        if user == traced_user:
            out = s.run(user, [str(main)]).stdout
        else:
            argv = as_user(user, [str(main)])
            out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return int(out.split()[0])

    with session([probe], uid=traced_user.uid, uprobe_mode=uprobe_mode, uprobe_scope=scope) as s:
        engine = s.engine
        fids = {spec.name: fid for fid, spec in engine.functions.specs.items()}
        first = run(traced_user)
        # not traced; scoped to the node its breakpoints were hit all the same
        run(intruder_user)
        runs = 2 if scope == "node" else 1
        assert engine.function_hits() == {
            fids["dc_add"]: 10 * runs,
            fids["dc_scale"]: 5 * runs,
            fids["dc_peek"]: runs,
        }
        assert engine.detach_functions({fids["dc_add"]: "too hot"}) == [
            TargetOutcome("DEMO", ProbeType.UPROBE, "dc_add", False, "too hot", str(lib))
        ]
        assert engine.detach_functions({fids["dc_add"]: "again"}) == []
        second = run(traced_user)
        assert engine.function_hits() == {
            fids["dc_scale"]: 5 * runs + 5,
            fids["dc_peek"]: runs + 1,
        }
    trace = s.trace
    assert [len(trace.events_of(first, name)) for name in ("dc_add", "dc_scale", "dc_peek")] == [
        10,
        5,
        1,
    ]
    assert [len(trace.events_of(second, name)) for name in ("dc_add", "dc_scale", "dc_peek")] == [
        0,
        5,
        1,
    ]
