"""The compiled formatter (trace/_format.c) against an oracle: every line it writes for random
call records, parsed back, holds exactly the record's fields as the function's spec says to
print them (narrowed to the argument's C type, hashes as 16 hex digits, labels, fhash only
for functions with a file), with file-name and task records between calls and discarded
records skipped."""

from __future__ import annotations

import json
import random
import struct

from datacrumbs.ebpf.functions import ArgField, ArgKind, FunctionSpec
from datacrumbs.ebpf.records import CALL, NAME_HEADER, TASK
from datacrumbs.trace.format import EventFormatter

OFFSET = 1_790_000_000_123_456_789
DISCARD = 1 << 30


def _framed(body: bytes, discard: bool = False) -> bytes:
    header = struct.pack("<II", len(body) | (DISCARD if discard else 0), 0)
    return header + body + b"\0" * (-len(body) % 8)


def _narrow(value: int, field: ArgField) -> int | str:
    if field.kind is ArgKind.HASH:
        return f"{value & (1 << 64) - 1:016x}"
    if field.num_bytes >= 8:
        return value
    bits = 8 * field.num_bytes
    value &= (1 << bits) - 1
    if field.signed and value >> (bits - 1):
        value -= 1 << bits
    return value


def _ret_field(spec: FunctionSpec) -> ArgField:
    return ArgField("ret", 0, num_bytes=spec.ret_bytes, signed=spec.ret_signed)


def _specs(rnd: random.Random) -> dict[int, FunctionSpec]:
    specs = {}
    for fid in range(1, 30):
        fields = tuple(
            ArgField(
                f"arg{i}",
                i,
                rnd.choice([ArgKind.INT, ArgKind.INT, ArgKind.HASH]),
                num_bytes=rnd.randint(1, 8),
                signed=rnd.random() < 0.5,
            )
            for i in rnd.sample(range(6), rnd.randint(0, 6))
        )
        specs[fid] = FunctionSpec(
            fid,
            rnd.choice(["write", 'odd"name%d', "é"]),
            rnd.choice(["POSIX", "STDIO"]),
            fields,
            has_file=rnd.random() < 0.6,
            has_return=rnd.random() < 0.8,
            labels=(("syscall", "wr%ite"),) if rnd.random() < 0.5 else (),
            ret_bytes=rnd.choice([1, 2, 4, 8, 8]),
            ret_signed=rnd.random() < 0.5,
        )
    return specs


def test_every_line_holds_its_records_fields() -> None:
    rnd = random.Random(15)
    specs = _specs(rnd)
    chunk, calls = b"", []
    for _ in range(5000):
        roll = rnd.random()
        if roll < 0.9:
            fid = rnd.randint(1, 32)  # 30..32: ids without a spec, skipped
            rec = (fid, rnd.randint(1, 2**31), rnd.randint(1, 2**31), rnd.randint(0, 2**62),
                   rnd.randint(0, 2**40), rnd.randint(-(2**63), 2**63 - 1),
                   rnd.choice([0, rnd.randint(1, 2**64 - 1)]),
                   *(rnd.randint(-(2**63), 2**63 - 1) for _ in range(6)))  # fmt: skip
            discard = rnd.random() < 0.02
            chunk += _framed(CALL.pack(1, *rec), discard)
            if not discard and fid in specs:
                calls.append(rec)
        elif roll < 0.95:
            name = rnd.choice([b"/tmp/a", "/tmp/é".encode()])
            body = NAME_HEADER.pack(2, len(name), rnd.randint(1, 2**64 - 1), 5, 6) + name + b"\0"
            chunk += _framed(body)
        else:
            chunk += _framed(TASK.pack(3, 0, 7, 8, b"thread", b"process"))
    fmt = EventFormatter(specs, clock_offset=OFFSET, hostname="node1", pid=1, tid=1)
    lines = [json.loads(line) for line in fmt.format(chunk).decode().splitlines()]
    events = [e for e in lines if e.get("ph") == "X"]
    assert len(events) == len(calls) == fmt.events
    assert [e["id"] for e in lines] == list(range(1, len(lines) + 1))
    for event, (fid, pid, tid, ts, dur, ret, fhash, *args) in zip(events, calls, strict=True):
        spec = specs[fid]
        assert (event["name"], event["cat"], event["pid"], event["tid"]) == (
            spec.name, spec.category, pid, tid)  # fmt: skip
        assert (event["ts"], event["dur"]) == ((ts + OFFSET) // 1000, dur // 1000)
        expected: dict[str, object] = {"hhash": fmt.hhash}
        if spec.has_return:
            expected["ret"] = _narrow(ret, _ret_field(spec))
        expected |= {f.key: _narrow(args[f.index], f) for f in spec.fields}
        expected |= dict(spec.labels)
        if spec.has_file and fhash:
            expected["fhash"] = f"{fhash:016x}"
        assert event["args"] == expected


def test_a_narrow_return_is_written_without_the_register_s_upper_bits() -> None:
    """Issue 25, N9: a kernel function returning bool (``capable``) leaves the rest of the
    register as it was, here a kernel address: only its own byte is written."""
    spec = FunctionSpec(1, "capable", "KERNEL", (), has_return=True, ret_bytes=1, ret_signed=False)
    rec = (1, 10, 10, 1000, 10, 0xFFFF_8881_2345_6701 - (1 << 64), 0, *([0] * 6))
    fmt = EventFormatter({1: spec}, clock_offset=OFFSET, hostname="node1", pid=1, tid=1)
    [event] = [json.loads(line) for line in fmt.format(_framed(CALL.pack(1, *rec))).splitlines()]
    assert event["args"]["ret"] == 1
