"""A small run of the gateway benchmark: structure and sanity, not timing (the LiteLLM leg,
which takes ~20 s to start, is covered by tests/gateway/test_litellm_plugin.py)."""

from __future__ import annotations

import json

from distillguard.bench.gateway import latency_stats, markdown_table, run_gateway_bench, time_to_first_throttle


def test_small_gateway_bench_writes_results_table_and_plot(tmp_path):
    results = run_gateway_bench(tmp_path, small=True, litellm=False)  # the reseller replays too
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["settings"]["small"] is True and len(saved["machine"]["load_avg_start"]) == 3
    for mode in ("non-stream", "stream"):
        legs = saved["latency"][mode]
        assert set(legs) == {"direct", "distillguard"}
        for leg in legs.values():
            assert leg["status"] == {"200": leg["status"]["200"]} and leg["status"]["200"] > 0  # every answer a 200
            lat = leg["latency_ms"]
            assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
            assert leg["server_cpu_pct"] >= 0
        thr = saved["throughput"][mode]["distillguard"]
        assert thr["rps"] > 0 and thr["server_cpu_s"] > 0 and thr["rps_per_core"] > 0
        assert set(saved["added_latency_ms"][mode]["distillguard"]) == {"p50", "p90", "p99"}
    hydra = saved["hydra"]
    assert hydra["requests"] > hydra["campaign_requests"] > 0 and hydra["campaign_accounts"] > 0
    assert sum(hydra["statuses"].values()) == hydra["requests"] and not hydra["errors"]
    assert "first_throttle" in hydra and hydra["compression"] > 1
    for label in ("end_users_online", "accounts_only"):
        leg = saved["reseller"][label]
        assert leg["scenario"] == "hydra_mixed_reseller" and leg["settings"] == {"online_end_users": label == "end_users_online"}
        assert leg["campaign_end_users"] > 0 and leg["mixed_genuine_end_users"] > 0 and not leg["errors"]
        assert sum(leg["statuses"].values()) == leg["requests"]
    assert (tmp_path / "latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "| non-stream | distillguard |" in (tmp_path / "results.md").read_text()
    assert markdown_table(results) == (tmp_path / "results.md").read_text()


def test_time_to_first_throttle_counts_in_scenario_time_and_requests():
    events = [{"ts": 100.0, "account_id": "b1"}, {"ts": 160.0, "account_id": "c1"}, {"ts": 200.0, "account_id": "b1"},
              {"ts": 460.0, "account_id": "c2"}, {"ts": 3760.0, "account_id": "c1"}]  # fmt: skip
    replay = {"events": events, "campaign_accounts": {"c1", "c2"}, "compression": 60.0, "span_s": 3660.0}
    statuses = [(0, 200, 1.0), (1, 200, 1.0), (2, 429, 1.0), (3, 403, 1.0), (4, 429, 1.0)]
    out = time_to_first_throttle(replay, statuses)
    assert out["first_refusal"] == {"scenario_s": 300.0, "scenario_h": 0.08, "replay_s": 5.0, "campaign_requests_before": 1,
                                    "all_requests_before": 2, "account": "c2"}  # fmt: skip
    assert out["first_throttle"]["scenario_s"] == 3600.0 and out["first_throttle"]["campaign_requests_before"] == 2
    assert out["benign_requests_refused"] == 1 and out["campaign_accounts_refused"] == 2


def test_end_users_refused_are_counted_where_campaigns_hide_among_a_resellers_end_users():
    events = [{"ts": 0.0, "account_id": "r", "end_user": "good"}, {"ts": 10.0, "account_id": "r", "end_user": "bad"},
              {"ts": 20.0, "account_id": "r", "end_user": "bad"}, {"ts": 30.0, "account_id": "r", "end_user": "good"},
              {"ts": 40.0, "account_id": "r", "end_user": "also-good"}, {"ts": 50.0, "account_id": "x"}]  # fmt: skip
    replay = {"events": events, "campaign_accounts": {"r"}, "is_campaign": [False, True, True, False, False, False],
              "mixed_accounts": {"r"}, "compression": 10.0, "span_s": 50.0}  # fmt: skip
    out = time_to_first_throttle(replay, [(0, 200, 1.0), (1, 200, 1.0), (2, 429, 1.0), (3, 429, 1.0), (4, 200, 1.0), (5, 429, 1.0)])
    assert out["campaign_requests"] == 2 and out["first_throttle"]["scenario_s"] == 10.0
    assert out["first_throttle"]["campaign_requests_before"] == 1 and out["campaign_refused_share"] == 0.5
    assert (out["campaign_end_users"], out["campaign_end_users_refused"]) == (1, 1)
    assert (out["mixed_genuine_requests"], out["mixed_genuine_requests_refused"]) == (3, 1)
    assert (out["mixed_genuine_end_users"], out["mixed_genuine_end_users_refused"]) == (2, 1)
    assert out["benign_requests_refused"] == 2  # the genuine end user's and account x's


def test_latency_stats_of_nothing():
    assert latency_stats([])["p99"] is None
