"""The project's mutation script (scripts/mutate.py) stays usable: every entry finds its
line exactly once (a refactor that moves a formula must move its mutation too), names tests
that exist, and one mutation run end to end is killed while the unmutated copy passes."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def mutate():
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "scripts" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate"] = module
    spec.loader.exec_module(module)
    return module


def test_every_mutation_applies_to_exactly_one_line(mutate):
    names = [m.name for m in mutate.MUTATIONS]
    assert len(names) == len(set(names)) and len(names) >= 40
    for m in mutate.MUTATIONS:
        text = (ROOT / m.path).read_text()
        assert text.count(m.find) == 1, (
            f"{m.name}: stale ({text.count(m.find)} matches in {m.path})"
        )
        assert m.find != m.replace and m.tests, m.name
        for t in m.tests:
            assert (ROOT / t).is_file(), f"{m.name}: no test file {t}"


def test_a_mutation_run_is_killed(mutate):
    (cull,) = [m for m in mutate.MUTATIONS if m.name == "cull-margin"]
    status, _ = mutate.run(cull, timeout=300)
    assert status == "killed"
