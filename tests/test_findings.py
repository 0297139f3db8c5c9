from __future__ import annotations

import json

import numpy as np
import orjson

from distillguard.findings import FINDINGS_SCHEMA_VERSION, AccountFinding, Evidence, Signal


def _finding() -> AccountFinding:
    return AccountFinding(
        "acct-\"7\"", np.float64(0.123456789), True, cluster_id="c0001",
        signals=[Signal("gap_cv", np.float64(0.05), 1.5, "variation of time between requests"), Signal("n", 3, 50.0, "x")],
        evidence=[Evidence("rules", "Reasoning-trace coercion", "92% of prompts ask for \u00e9tapes", 0.8, "dg-001"),
                  Evidence("isolation", "Unlike the population", "far out", 0.3)],
        n_events=12, est_exchanges=11, first_seen=1.7e9, last_seen=None, sample_prompts=["hi <email>"],
        detector_scores={"rules": np.float64(0.8), "isolation": 0.25}, flagged_end_users=[{"end_user": "-2", "score": 0.9}],
    )  # fmt: skip


def test_to_json_is_to_dict_as_json():
    finding = _finding()
    assert finding.to_json() == orjson.dumps(finding.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)
    row = json.loads(finding.to_json())
    assert row["score"] == 0.123457 and row["schema_version"] == FINDINGS_SCHEMA_VERSION
    assert row["evidence"][1] == {"detector": "isolation", "title": "Unlike the population", "detail": "far out",
                                  "weight": 0.3, "rule_id": None}  # fmt: skip
