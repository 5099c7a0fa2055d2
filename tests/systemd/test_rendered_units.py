"""The units datacrumbs_install renders: valid for systemd, and as hardened as measured."""

from __future__ import annotations

import re

import pytest
from systemd_node import UNITS, Node

#: Exposure scores of `systemd-analyze security` (0 safest, 10 worst) written down in
#: docs/hardening.md; a change to the units that loosens them fails here.
EXPOSURE = {"datacrumbs@job42.service": 2.4, "datacrumbs_sign_probes.service": 1.4}


def test_install_renders_exactly_the_two_units(node: Node) -> None:
    rendered = node.container.run("ls", str(node.units_dir)).stdout.split()
    assert rendered == sorted(UNITS)


@pytest.mark.parametrize("unit", UNITS)
def test_rendered_unit_passes_systemd_analyze_verify(node: Node, unit: str) -> None:
    path = node.units_dir / unit
    result = node.container.run("systemd-analyze", "verify", "--man=no", str(path), check=False)
    assert (result.returncode, result.stderr) == (0, "")
    text = node.read(path)
    assert "@DATACRUMBS_" not in text
    assert f"Environment=DATACRUMBS_INSTALL_PREFIX={node.prefix}\n" in text


@pytest.mark.parametrize(("unit", "score"), EXPOSURE.items())
def test_exposure_score_is_what_docs_hardening_says(node: Node, unit: str, score: float) -> None:
    out = node.container.run("systemd-analyze", "security", "--no-pager", unit).stdout
    found = re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+)", out)
    assert found is not None, out
    assert float(found.group(1)) == score
