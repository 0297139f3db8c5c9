"""What keeps linking bounded at scale: hub pairs without a self-join, pruned light pairs, grouped evidence stats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from distillguard.linking import LinkConfig, build_edges
from distillguard.linking.clusters import edge_type_stats
from distillguard.linking.graph import weighted_pairs
from distillguard.store.duckdb import DuckDBStore
from tests.factories import event_row, events_table
from tests.linking.factories import build_store


@pytest.mark.parametrize("n", [5, 6, 40])
def test_pairs_of_one_shared_ip_are_all_pairs_up_to_the_cap_then_hub_pairs(n):
    store = DuckDBStore(":memory:")
    rows = [event_row(i, f"a{i:03d}", 1.7e9 + i, ip_hash=1, ip_prefix_hash=None, minhash_bands=[]) for i in range(n)]
    store.append("events", events_table(rows))
    cfg = LinkConfig(group_cap=5, hubs=2)
    ip = build_edges(store, cfg).query("type == 'ip'")
    if n <= cfg.group_cap:
        assert len(ip) == n * (n - 1) // 2
    else:  # every member to each hub, the hubs to each other once
        assert len(ip) == (n - cfg.hubs) * cfg.hubs + cfg.hubs * (cfg.hubs - 1) // 2
        degree = pd.concat([ip["a"], ip["b"]]).value_counts()
        assert (degree == n - 1).sum() == cfg.hubs  # the hubs reach everyone
        assert (degree == cfg.hubs).sum() == n - cfg.hubs  # everyone else reaches the hubs only
    assert (ip["a"] < ip["b"]).all() and not ip.duplicated(["a", "b"]).any()


def test_keys_of_one_account_make_no_edges():
    store = DuckDBStore(":memory:")
    # one account alone on its IP, prefix and bands, repeating them: nothing to pair with
    rows = [event_row(i, "solo", 1.7e9 + i, ip_hash=9, ip_prefix_hash=9, minhash_bands=[1, 2, 3]) for i in range(5)]
    rows += [event_row(10 + i, "other", 1.7e9 + i, ip_hash=8, ip_prefix_hash=8, minhash_bands=[4]) for i in range(5)]
    store.append("events", events_table(rows))
    assert build_edges(store).empty


def test_light_pairs_are_pruned_unless_behaviour_binds_them():
    edges = pd.DataFrame({
        "a": ["x", "x", "y", "p"], "b": ["y", "z", "z", "q"], "type": ["ip", "client", "ip_prefix", "template"],
        "strength": [1.0, 0.2, 0.2, 0.02], "raw_overlap": [1.0, 1.0, 1.0, 0.9],
    })  # fmt: skip
    pairs = weighted_pairs(edges, LinkConfig(min_pair_weight=0.1))
    kept = {(a, b) for a, b in zip(pairs["a"], pairs["b"], strict=True)}
    # ip 0.6 kept; client 0.3*0.2 = 0.06 and prefix 0.25*0.2 = 0.05 pruned; the template pair is light but binding
    assert kept == {("x", "y"), ("p", "q")}
    assert bool(pairs.set_index(["a", "b"]).loc[("p", "q"), "binding"])
    assert len(weighted_pairs(edges, LinkConfig(min_pair_weight=0.0))) == 4


def test_edge_type_stats_match_filtering_each_cluster():
    store = build_store(n_hydra=12, n_nat=10, n_chat=5)
    edges = build_edges(store)
    clusters = {a: ("h" if a.startswith("hyd") else "n") for a in set(edges["a"]) | set(edges["b"])}
    ca, cb = edges["a"].map(clusters), edges["b"].map(clusters)
    inner = edges[ca == cb].assign(cluster_id=ca[ca == cb])
    stats = edge_type_stats(inner)
    for (cid, t), sub in inner.groupby(["cluster_id", "type"]):
        st = stats[cid][t]
        assert st["n_edges"] == len(sub)
        assert st["linked"] == len(set(sub["a"]) | set(sub["b"]))
        assert st["overlap"] == pytest.approx(sub["raw_overlap"].mean())
        assert st["r_max"] == pytest.approx(sub["strength"].max())
        assert st["keys"] == [int(k) for k in sub["example_key"].dropna().astype("int64").unique()[:3]]
        assert st["n_keys"] == sub["example_key"].dropna().nunique()
    assert edge_type_stats(inner.iloc[0:0]) == {}


def test_near_dup_overlap_is_the_share_of_requests_behind_the_shared_bands():
    store = DuckDBStore(":memory:")
    # each account sends 4 prompts; one prompt of each has the same 8 bands: overlap = 8 * 1/(4*8) = 0.25
    rows = []
    for acct, base in (("a", 0), ("b", 100)):
        rows += [event_row(base + i, acct, 1.7e9 + i, ip_prefix_hash=base + i, minhash_bands=[base * 1000 + i * 8 + k for k in range(8)])
                 for i in range(3)]  # fmt: skip
        rows.append(event_row(base + 3, acct, 1.7e9 + 3, ip_prefix_hash=base + 3, minhash_bands=list(range(8))))
    store.append("events", events_table(rows))
    near = build_edges(store).query("type == 'near_dup'")
    assert len(near) == 1
    assert near["raw_overlap"].iloc[0] == pytest.approx(0.25)
    assert near["strength"].iloc[0] == pytest.approx(0.25)  # two accounts: no damping
    assert near["n_keys"].iloc[0] == 8


def test_keys_with_the_same_members_count_once_each_and_others_apart():
    store = DuckDBStore(":memory:")
    # a and b share one prompt's 8 bands; c shares band 0 of them only.  Bands 1..7 have the same members
    # (one pair, counted 7 times); band 0 is a group of 3 and is damped as one
    rows = []
    for acct, base in (("a", 0), ("b", 100), ("c", 200)):
        rows += [event_row(base + i, acct, 1.7e9 + i, ip_prefix_hash=base + i, minhash_bands=[base * 1000 + i * 8 + k for k in range(8)])
                 for i in range(3)]  # fmt: skip
        shared = list(range(8)) if acct != "c" else [0]
        rows.append(event_row(base + 3, acct, 1.7e9 + 3, ip_prefix_hash=base + 3, minhash_bands=shared))
    store.append("events", events_table(rows))
    near = build_edges(store).query("type == 'near_dup'").set_index(["a", "b"])
    share_ab = 1 / 32  # one of 4 requests x 8 bands
    damp3 = 1 / (1 + 0.25 * np.log(3 / 2))
    ab = near.loc[("a", "b")]
    assert ab["n_keys"] == 8
    assert ab["raw_overlap"] == pytest.approx(8 * share_ab)
    assert ab["strength"] == pytest.approx(7 * share_ab + share_ab * damp3)
    assert ("a", "c") not in near.index  # one damped band: 1/32 * 0.91 < min_content_strength
