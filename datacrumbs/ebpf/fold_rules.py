"""The probe file's delivery rules, by function id, for trace mode's valve (``dc_fold_rules``).

A category says how its calls reach the trace (``delivery``: events until the valve opens,
always events, always aggregated) and may make exceptions of some of its functions
(``function_delivery``); see :data:`datacrumbs.common.probes.Delivery`. Each attached function
is found by what its spec carries: its category label, and the function the probe file names
(``target``, or the ``syscall`` label: a syscall's event is named as DFTracer names it,
``openat`` is ``open``). The
io_uring requests follow the rule of ``io_uring_enter``, which asked for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from datacrumbs.common.dftracer_names import IO_URING
from datacrumbs.common.probes import Delivery, Probe
from datacrumbs.ebpf.functions import FunctionSpec
from datacrumbs.ebpf.records import Rule

__all__ = ["RULES", "rules_by_fid"]

#: Each delivery's rule in the kernel.
RULES: dict[Delivery, Rule] = {
    "valve": Rule.VALVE,
    "events": Rule.EVENTS,
    "aggregate": Rule.AGGREGATE,
}


def rules_by_fid(probes: Iterable[Probe], specs: Mapping[int, FunctionSpec]) -> dict[int, Rule]:
    """The rule of every attached function whose rule is not the default (:attr:`Rule.VALVE`)."""
    wanted: dict[tuple[str, str], Rule] = {}
    for probe in probes:
        for function in probe.functions:
            rule = RULES[probe.delivery_of(function)]
            if rule is not Rule.VALVE:
                wanted[(probe.name, function)] = rule
    if not wanted:
        return {}
    out: dict[int, Rule] = {}
    for fid, spec in specs.items():
        labels = dict(spec.labels)
        function = spec.target or labels.get("syscall", spec.name)
        if function == IO_URING:
            function = "io_uring_enter"
        found = wanted.get((labels.get("category", spec.category), function))
        if found is not None:
            out[fid] = found
    return out
