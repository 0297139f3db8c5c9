"""Policy files: conditions, first match, validation errors naming file and field, hot reload."""

from __future__ import annotations

import os
import time

import pytest

from distillguard.errors import ConfigError
from distillguard.gateway.policy import DEFAULT_POLICY_PATH, Policy, PolicyWatcher, requested_max_tokens
from distillguard.gateway.risk import RiskView
from distillguard.gateway.types import Action, RequestInfo

POLICY = """
version: 1
mode: enforce
rules:
  - name: block-campaign
    when: {flagged: true, cluster_flagged: true}
    actions: [block]
  - name: throttle-flagged
    when: {flagged: true}
    actions: [throttle, strip_logprobs, clamp]
    throttle: {unit: requests, account: {rate: 1, burst: 5}, cluster: {rate: 2, burst: 10}}
    clamp: {n: 1, max_tokens: 512}
  - name: logprob-sweepers
    when: {signals: [logprob_harvesting], logprobs: true}
    actions: [strip_logprobs]
    shadow: true
  - name: big-asks
    when: {score_gte: 0.3, max_tokens_gt: 4096, endpoints: [/v1/chat/completions]}
    actions: [clamp, flag]
    clamp: {max_tokens: 4096}
"""


def req(body=None, endpoint="/v1/chat/completions"):
    return RequestInfo("acct-1", endpoint, body or {})


def test_first_matching_rule_decides(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text(POLICY)
    policy = Policy.load(path)
    assert policy.source == str(path) and not policy.shadow
    flagged = RiskView("acct-1", score=0.9, flagged=True)
    assert policy.match(RiskView("acct-1", score=0.9, flagged=True, cluster_flagged=True), req()).name == "block-campaign"
    rule = policy.match(flagged, req())
    assert rule.name == "throttle-flagged" and rule.throttle.unit == "requests"
    assert rule.throttle.account.burst == 5 and rule.clamp == {"n": 1, "max_tokens": 512}
    sweeper = RiskView("acct-1", score=0.5, signals=frozenset({"logprob_harvesting"}))
    assert policy.match(sweeper, req({"top_logprobs": 5})).shadow
    assert policy.match(sweeper, req({})) is None  # conditions are ANDed
    assert policy.match(RiskView("acct-1", score=0.4), req({"max_completion_tokens": 8000})).name == "big-asks"
    assert policy.match(RiskView("acct-1", score=0.4), req({"max_tokens": 8000}, endpoint="/v1/completions")) is None
    assert policy.match(RiskView("acct-1"), req({"logprobs": True, "n": 5})) is None


def test_shipped_default_policy_loads_and_acts_on_flags_only():
    policy = Policy.load(DEFAULT_POLICY_PATH)
    assert policy.mode == "enforce" and policy.rules
    assert policy.match(RiskView("a"), req({"logprobs": True, "n": 8, "max_tokens": 100_000})) is None
    rule = policy.match(RiskView("a", score=0.9, flagged=True), req())
    assert Action.THROTTLE in rule.actions and rule.throttle.account and rule.throttle.cluster
    assert policy.match(RiskView("a", score=0.4), req({"logprobs": True})).actions == (Action.STRIP_LOGPROBS, Action.FLAG)
    assert requested_max_tokens({"max_tokens": True, "max_output_tokens": 9}) == 9


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("rules: [{name: a, when: {scor_gte: 0.5}, actions: [flag]}]", "rules[0] (a).when.scor_gte"),
        ("rules: [{name: a, when: {score_gte: high}, actions: [flag]}]", "rules[0] (a).when.score_gte"),
        ("rules: [{name: a, when: {score_gte: 1.5}, actions: [flag]}]", "rules[0] (a).when.score_gte"),
        ("rules: [{name: a, actions: [explode]}]", "rules[0] (a).actions"),
        ("rules: [{name: a, actions: [allow, block]}]", "rules[0] (a).actions"),
        ("rules: [{name: a, actions: [throttle]}]", "rules[0] (a).throttle"),
        ("rules: [{name: a, actions: [throttle], throttle: {account: {rate: 0, burst: 5}}}]", "rules[0] (a).throttle.account.rate"),
        ("rules: [{name: a, actions: [throttle], throttle: {unit: bytes, account: {rate: 1, burst: 5}}}]", "rules[0] (a).throttle.unit"),
        ("rules: [{name: a, actions: [clamp], clamp: {temperature: 1}}]", "rules[0] (a).clamp.temperature"),
        ("rules: [{name: a, actions: [flag]}, {name: a, actions: [flag]}]", "rules[1].name"),
        ("rules: [{when: {flagged: true}, actions: [flag]}]", "rules[0].name"),
        ("mode: dry\nrules: []", "mode"),
        ("rule: []", "rule"),
        ("rules: [{name: a, actions: [flag], shadow: yes please}]", "rules[0] (a).shadow"),
    ],
)
def test_invalid_policies_name_the_file_and_field(tmp_path, text, field):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        Policy.load(path)
    assert str(err.value).startswith(f"{path}: {field}:"), str(err.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Policy.load(tmp_path / "nope.yml")
    (tmp_path / "x.yml").write_text("rules: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Policy.load(tmp_path / "x.yml")


def _rewrite(path, text):
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a distinct mtime even on coarse clocks


def test_watcher_reloads_changes_and_keeps_the_old_policy_when_the_new_one_is_invalid(tmp_path, caplog):
    path = tmp_path / "p.yml"
    path.write_text("rules: [{name: one, when: {flagged: true}, actions: [flag]}]")
    watcher = PolicyWatcher(path, check_interval_s=0.0)
    assert [r.name for r in watcher.current().rules] == ["one"]
    _rewrite(path, "mode: shadow\nrules: [{name: two, when: {flagged: true}, actions: [block]}]")
    assert watcher.current().mode == "shadow" and watcher.reloads == 1
    _rewrite(path, "rules: [{name: three, when: {flaged: true}, actions: [block]}]")
    with caplog.at_level("ERROR"):
        assert [r.name for r in watcher.current().rules] == ["two"]
    assert "flaged" in watcher.last_error and "keeping the previous policy" in caplog.text
    _rewrite(path, "rules: [{name: four, actions: [flag]}]")
    assert [r.name for r in watcher.current().rules] == ["four"] and watcher.last_error is None


def test_watcher_checks_at_most_every_interval(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text("rules: []")
    watcher = PolicyWatcher(path, check_interval_s=3600.0)
    _rewrite(path, "mode: shadow\nrules: []")
    t = time.perf_counter()
    for _ in range(10_000):
        watcher.current()
    per_call_us = (time.perf_counter() - t) / 10_000 * 1e6
    assert watcher.current().mode == "enforce"  # not checked yet
    assert per_call_us < 20
    assert watcher.check() and watcher.current().mode == "shadow"


def test_invalid_policy_at_start_is_an_error(tmp_path):
    (tmp_path / "p.yml").write_text("rules: [{name: a}]")
    with pytest.raises(ConfigError, match="actions"):
        PolicyWatcher(tmp_path / "p.yml")
