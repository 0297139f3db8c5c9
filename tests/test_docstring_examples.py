"""Every example in the package's docstrings runs and prints what it shows.

Public APIs carry an example in their docstring; this keeps those examples true.
"""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil

import pytest

import distillguard

# Importing the LiteLLM plugin imports litellm, which otherwise fetches its model cost map from the
# network at import time; the run-time rule is no network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(distillguard.__path__, "distillguard.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, module_name):
        runner.run(test, out=report.append)
    failed, attempted = runner.failures, runner.tries
    assert failed == 0, f"{failed} of {attempted} examples failed:\n" + "".join(report)


def test_modules_are_found() -> None:
    assert "distillguard.report.terminal" in MODULES and len(MODULES) > 50
