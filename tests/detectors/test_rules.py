from __future__ import annotations

import pandas as pd
import pytest

from distillguard.detectors.rules import RuleDetector, load_rules
from distillguard.errors import ConfigError


def test_every_shipped_rule_passes_its_inline_cases():
    rules = load_rules()
    assert len(rules) >= 8
    failures = [msg for rule in rules for msg in rule.run_tests()]
    assert failures == []
    assert all(len(rule.tests) >= 2 for rule in rules), "every rule carries a positive and a negative case"


def test_noisy_or_grows_with_each_rule_fired():
    frame = pd.DataFrame(
        {"reasoning_elicit_share": [0.9, 0.9, 0.0], "n_events": [50.0, 50.0, 50.0], "n_scripts": [4.0, 1.0, 1.0],
         "single_turn_share": [1.0, 1.0, 1.0], "mean_completion_tokens": [600.0, 600.0, 600.0]},
        index=["both", "one", "none"],
    )  # fmt: skip
    scores = RuleDetector().score(frame)
    assert scores[0] > scores[1] > scores[2] == 0.0


def test_bad_rule_files_name_the_file(tmp_path):
    (tmp_path / "broken.yml").write_text("id: x\ntitle: t\nseverity: 0.5\nevidence: e\nwhen: [{feature: a, op: '=~', value: 1}]\n")
    with pytest.raises(ConfigError, match="broken.yml"):
        load_rules(tmp_path)


def test_user_rules_extend_and_override_builtins(tmp_path):
    (tmp_path / "mine.yml").write_text(
        "id: reasoning_trace_coercion\ntitle: Mine\nseverity: 0.1\nevidence: e\nwhen: [{feature: n_events, op: '>=', value: 1}]\n"
    )
    rules = {r.id: r for r in load_rules(tmp_path)}
    assert rules["reasoning_trace_coercion"].title == "Mine"
