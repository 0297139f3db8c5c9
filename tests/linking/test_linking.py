"""Campaign linking: hydra clusters are found and pooled; NATs are not lifted; group caps bound the pairs."""

from __future__ import annotations

import io
import json

import numpy as np
import orjson
import pandas as pd
import pytest

from distillguard.detectors.ensemble import Ensemble
from distillguard.features.account import compute_account_features
from distillguard.linking import LinkConfig, build_edges, link_accounts
from distillguard.linking.clusters import pooled_features
from distillguard.linking.link import _edge_lines, _write_items
from distillguard.store.duckdb import DuckDBStore
from tests.factories import event_row, events_table
from tests.linking.factories import accounts_table, build_store, hydra_rows


@pytest.fixture(scope="module")
def linked():
    store = build_store()
    frame = compute_account_features(store)
    model = Ensemble.load()
    model.fit_population(frame)
    frame["score"] = model.score(frame)
    return store, frame, model, link_accounts(store, frame, model, model.threshold)


def _cluster_with(result, account):
    cid = result.cluster_of[account]
    return next(c for c in result.clusters if c.cluster_id == cid)


def test_partitioned_hydra_is_one_cluster_scored_above_every_member(linked):
    _, frame, _, result = linked
    hydra = [a for a in frame.index if a.startswith("hyd-")]
    cluster = _cluster_with(result, hydra[0])
    assert sorted(cluster.account_ids) == hydra
    assert cluster.bound
    assert cluster.score > frame.loc[hydra, "score"].max() + 0.3
    assert cluster.max_member_score == pytest.approx(frame.loc[hydra, "score"].max())
    # members are lifted to the pooled score
    assert (result.account_scores[hydra] >= cluster.score - 1e-9).all()
    for t in ("template", "near_dup", "timing", "payment"):
        assert cluster.edge_types.get(t, 0) > 0, t


def test_nat_and_chat_users_are_not_lifted(linked):
    _, frame, model, result = linked
    benign = [a for a in frame.index if not a.startswith("hyd-")]
    assert (result.account_scores[benign] == frame.loc[benign, "score"]).all()
    nat = [a for a in benign if a.startswith("nat-")]
    nat_clusters = {result.cluster_of.get(a) for a in nat} - {None}
    assert nat_clusters
    for c in result.clusters:
        if c.cluster_id in nat_clusters:
            assert not c.bound and not c.flagged
            assert set(c.edge_types) <= {"ip", "ip_prefix", "client", "creation", "payment"}


def test_only_bound_clusters_are_pooled_and_scored(linked):
    store, frame, _, result = linked
    unbound = [c for c in result.clusters if not c.bound]
    assert unbound and all(c.scored for c in result.clusters if c.bound)
    pooled_units = {r[0] for r in store.con.execute("SELECT DISTINCT cluster_id FROM _dg_link_pool_map").fetchall()}
    assert {u.split("/")[0] for u in pooled_units} == {c.cluster_id for c in result.clusters if c.bound}
    for c in unbound:
        assert not c.scored and c.score == 0.0
        # the pooled volume is still reported: the members' own requests
        assert c.n_events == frame.loc[c.account_ids, "n_events"].sum()
        assert c.evidence[-1].title == "not pooled"
        assert c.to_dict()["scored"] is False and "not pooled" in c.explain()


def test_link_edges_are_build_edges_with_categorical_ids(linked):
    store, _, _, result = linked
    assert result.edges["a"].dtype == "category" and result.edges["type"].dtype == "category"
    strings = result.edges.astype({"a": object, "b": object, "type": object})
    pd.testing.assert_frame_equal(strings, build_edges(store))


def test_evidence_keeps_64_bit_key_hashes_exact():
    big = 0x7EDC_BA98_7654_3211  # not representable as a float64: a float round trip changes its last digits
    assert int(float(big)) != big
    store = DuckDBStore(":memory:")
    # both template halves big (an edge's example key is its smallest); the hydra also has timing edges (no key)
    rows = [{**r, "template_prefix_hash": big, "template_suffix_hash": big + 2} for r in hydra_rows(12)]
    store.append("events", events_table(rows))
    edges = build_edges(store)
    assert edges["example_key"].isna().any()
    assert big in set(edges.loc[edges["type"] == "template", "example_key"].astype("int64"))
    frame = compute_account_features(store)
    model = Ensemble.load()
    model.fit_population(frame)
    frame["score"] = model.score(frame)
    result = link_accounts(store, frame, model, model.threshold)
    text = "\n".join(e.detail for c in result.clusters for e in c.evidence)
    assert f"{big:016x}" in text


def test_evidence_names_the_shared_keys(linked):
    _, frame, _, result = linked
    cluster = _cluster_with(result, "hyd-000")
    text = "\n".join(e.detail for e in cluster.evidence)
    assert "20 of 20 accounts share prompt templates" in text
    assert f"{777:016x}" in text  # the shared template prefix hash
    assert f"{123456:016x}" in text  # the shared payment fingerprint
    assert "correlated" in text and "partitioned" in text.lower() or "complementary" in text
    assert cluster.to_dict()["n_accounts"] == 20
    assert "FLAGGED" in cluster.explain() or cluster.score < 0.7 or cluster.flagged


def test_write_graph_json_and_graphml(linked, tmp_path):
    *_, result = linked
    doc = json.loads(result.write_graph(tmp_path / "g.json").read_text())
    assert {e["type"] for e in doc["edges"]} >= {"template", "payment"}
    assert (tmp_path / "g.graphml").exists() is False
    assert result.write_graph(tmp_path / "g.graphml").read_text().startswith("<?xml")


def test_graph_json_edges_are_the_clustered_edges_value_for_value(linked, tmp_path):
    *_, result = linked
    doc = json.loads(result.write_graph(tmp_path / "g.json").read_text())
    e = result.edges[result.edges["a"].isin(list(result.cluster_of)) | result.edges["b"].isin(list(result.cluster_of))]
    expected = [
        {"source": a, "target": b, "type": t, "strength": round(float(s), 4), "n_keys": int(k),
         "example_key": None if pd.isna(x) else f"{int(x) & 0xFFFFFFFFFFFFFFFF:016x}"}
        for a, b, t, s, k, x in zip(e["a"], e["b"], e["type"], e["strength"], e["n_keys"], e["example_key"], strict=True)
    ]  # fmt: skip
    assert doc["edges"] == expected
    assert any(x["example_key"] is None for x in expected) and any(x["example_key"] for x in expected)  # timing and keyed


def test_json_items_are_written_the_same_in_any_chunking():
    items = [{"i": i, "s": f"x{i}\n\"q\""} for i in range(10)]
    written = []
    for chunk in (1, 3, 10, 50):
        fh = io.BytesIO()
        fh.write(b"[")
        _write_items(fh, iter(items), chunk=chunk)
        fh.write(b"]")
        written.append(fh.getvalue())
        assert json.loads(fh.getvalue()) == items
    assert len(set(written)) == 1 and written[0].count(b"\n  ") == 10  # one item per line


def test_edge_lines_are_what_orjson_writes_for_each_edge_in_any_chunking():
    rng = np.random.default_rng(4)
    ids = ['a"quoted"', "b\\back", "c\nline", "d\u00e9\u4e2d", "e"]
    n = 40
    strength = np.concatenate([[0.0, 1.0, 0.00005, 0.00004999, 0.12345, 0.99995], rng.random(n - 6)])
    keys = [None if i % 7 == 0 else int(x) for i, x in enumerate(rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64))]
    e = pd.DataFrame({
        "a": pd.Categorical(rng.choice(ids, n), categories=ids), "b": pd.Categorical(rng.choice(ids, n), categories=ids),
        "type": pd.Categorical(rng.choice(["ip", "timing"], n), categories=["ip", "timing"]), "strength": strength,
        "n_keys": rng.integers(0, 10**12, n), "example_key": pd.array(keys, dtype="Int64"),
    })  # fmt: skip
    expected = b",\n  ".join(
        orjson.dumps({"source": a, "target": b, "type": t, "strength": float(np.round(s, 4)), "n_keys": int(k),
                      "example_key": None if x is None else f"{x & 0xFFFFFFFFFFFFFFFF:016x}"})
        for a, b, t, s, k, x in zip(e["a"], e["b"], e["type"], strength, e["n_keys"], keys, strict=True)
    )  # fmt: skip
    for chunk in (1, 7, n, 1000):
        assert b",\n  ".join(_edge_lines(e, chunk=chunk)) == expected
    with pytest.raises(ValueError, match="strength"):
        list(_edge_lines(e.assign(strength=strength * 2)))


def test_pooled_features_are_the_same_from_the_view_and_from_a_copy_of_the_units_events(linked):
    store, frame, *_ = linked
    accounts = sorted(frame.index)
    units = pd.DataFrame({"account_id": accounts[:6] + accounts[2:4], "unit_id": ["u1"] * 6 + ["u1/part"] * 2})
    viewed, copied = pooled_features(store, units), pooled_features(store, units, copy=True)
    assert sorted(viewed.index) == ["u1", "u1/part"]
    assert viewed.loc["u1", "n_events"] == frame.loc[accounts[:6], "n_events"].sum()
    pd.testing.assert_frame_equal(viewed.sort_index(), copied.sort_index(), check_exact=False, rtol=1e-12)
    temp_tables = {name for (name,) in store.con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
    assert "_dg_link_pool_events" not in temp_tables  # the copy is dropped


def test_group_cap_bounds_pairs_of_a_huge_shared_key():
    store = DuckDBStore(":memory:")
    n = 3000  # one NAT / cloud egress: every account on the same prefix and IP
    rows = [event_row(i, f"a{i:05d}", 1.7e9 + i, ip_hash=1, ip_prefix_hash=2, minhash_bands=[]) for i in range(n)]
    store.append("events", events_table(rows))
    store.append("accounts", accounts_table([dict(account_id=f"a{i:05d}", payment_hash=5) for i in range(n)]))
    cfg = LinkConfig(group_cap=100, hubs=4)
    edges = build_edges(store, cfg)
    per_type = edges.groupby("type").size()
    for t in ("ip", "ip_prefix", "payment"):
        assert per_type[t] <= n * cfg.hubs  # not n*(n-1)/2 = 4.5M
        assert per_type[t] >= n - cfg.hubs  # everyone still linked to the hubs
    assert (edges.loc[edges["type"] == "ip", "strength"] < 0.2).all()  # damped by group size
    assert edges["group_n"].max() == n


def test_empty_store_links_nothing():
    store = DuckDBStore(":memory:")
    frame = compute_account_features(store)
    frame["score"] = []
    result = link_accounts(store, frame, Ensemble.load(), 0.7)
    assert result.cluster_of == {} and result.clusters == []


def test_edge_tables_are_built_with_at_most_two_duckdb_threads_and_the_store_keeps_its_own(monkeypatch):
    # more threads hold more hash tables these queries cannot spill: 3 or 4 ran out of the 1 GB limit on 1M events
    from distillguard.linking import graph

    store = build_store(n_hydra=6, n_nat=4, n_chat=4)
    store.con.execute("SET threads=4").fetchall()
    seen = []
    run = graph._exec

    def exec_and_note(st, sql):
        seen.append(int(st.con.execute("SELECT current_setting('threads')").fetchall()[0][0]))
        run(st, sql)

    monkeypatch.setattr(graph, "_exec", exec_and_note)
    graph.build_edge_tables(store)
    assert seen and set(seen) == {graph.EDGE_THREADS} == {2}
    assert store.con.execute("SELECT current_setting('threads')").fetchall()[0][0] == 4
    graph.drop_edge_tables(store)
