"""The arm64 check's deselect lists (tools/arm64/emulator-*.txt) name tests that exist.

run-inside.sh hands each line to pytest's ``--deselect``, which ignores an id that
matches nothing: after a rename the emulator would run a test it cannot pass (or
the CI budget would grow) with no word. Each id must name a test function (or
a parametrized one, by prefix) in a tests/ module that still defines it, and
carry the ``device_venv`` mark (else deselecting it under the emulator is moot).
"""

from __future__ import annotations

import ast
import re

import pytest

from device.config import PROJECT_ROOT

LISTS = sorted((PROJECT_ROOT / "tools" / "arm64").glob("emulator-*.txt"))


def list_ids(path):
    for line in path.read_text().splitlines():
        node = line.split("#", 1)[0].strip()
        if node:
            yield node


def device_venv_tests(module):
    """Names of the test functions in ``module`` marked ``device_venv`` (or under a module-wide mark)."""
    tree = ast.parse(module.read_text())
    module_wide = re.search(r"pytestmark\s*=.*device_venv", module.read_text()) is not None
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            marks = {ast.unparse(d) for d in node.decorator_list}
            if module_wide or any("device_venv" in m for m in marks):
                names.add(node.name)
    return names


def test_there_are_lists():
    names = {p.name for p in LISTS}
    assert {"emulator-limits.txt", "emulator-slow.txt"} <= names, names


@pytest.mark.parametrize("path", LISTS, ids=[p.name for p in LISTS])
def test_every_deselected_id_names_a_device_test(path):
    missing = []
    for node in list_ids(path):
        file, _, name = node.partition("::")
        module = PROJECT_ROOT / file
        if not module.is_file() or not name:
            missing.append(f"{node}: no such test module")
            continue
        if name.split("[")[0] not in device_venv_tests(module):
            missing.append(f"{node}: no device_venv test of that name in {file}")
    assert not missing, f"{path.name}:\n" + "\n".join(missing)
