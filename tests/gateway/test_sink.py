"""StoreSink's gateway_log: who each decision judged, and stores recorded by an earlier version."""

from __future__ import annotations

from distillguard.gateway.sink import GATEWAY_LOG_SCHEMA, StoreSink
from distillguard.gateway.types import Action, Decision
from distillguard.privacy import Hasher
from distillguard.store.duckdb import DuckDBStore
from tests.gateway.test_recorder import raw_event


def _log(store: DuckDBStore) -> list[dict]:
    return store.query("SELECT event_id, account_id, actions, sub_account_id FROM gateway_log ORDER BY event_id").to_pylist()


def test_the_log_names_the_end_user_a_decision_judged(tmp_path):
    store = DuckDBStore(tmp_path / "gw.duckdb")
    sink = StoreSink(store, Hasher(b"k"))
    throttled = Decision((Action.THROTTLE,), "end user of reseller-1 throttled", account_id="acct-1",
                         sub_account_id="acct-1#eu:42")  # fmt: skip
    sink.write([(raw_event(1), {"decision": throttled.to_dict()}), (raw_event(2), {"decision": Decision.allow("ok").to_dict()}),
                (raw_event(3), {})])  # fmt: skip
    assert _log(store) == [
        {"event_id": "e1", "account_id": "acct-1", "actions": "throttle", "sub_account_id": "acct-1#eu:42"},
        {"event_id": "e2", "account_id": "acct-1", "actions": "allow", "sub_account_id": None},
        {"event_id": "e3", "account_id": "acct-1", "actions": None, "sub_account_id": None},
    ]
    store.close()


def test_a_log_recorded_by_the_previous_version_gains_the_column_and_keeps_its_rows(tmp_path):
    store = DuckDBStore(tmp_path / "gw.duckdb")
    store.con.execute(  # as distillguard made it before sub_account_id
        "CREATE TABLE gateway_log (event_id VARCHAR, ts DOUBLE, account_id VARCHAR, endpoint VARCHAR, http_status BIGINT, "
        "error VARCHAR, actions VARCHAR, shadow BOOLEAN, reason VARCHAR, policy_rule VARCHAR, score DOUBLE, cluster_id VARCHAR)"
    ).fetchall()
    store.con.execute("INSERT INTO gateway_log (event_id, account_id, actions) VALUES ('e0', 'acct-0', 'flag')").fetchall()
    sink = StoreSink(store, Hasher(b"k"))
    sink.write([(raw_event(1), {"decision": Decision((Action.FLAG,), "r", sub_account_id="acct-1#eu:7").to_dict()})])
    assert _log(store) == [
        {"event_id": "e0", "account_id": "acct-0", "actions": "flag", "sub_account_id": None},
        {"event_id": "e1", "account_id": "acct-1", "actions": "flag", "sub_account_id": "acct-1#eu:7"},
    ]
    store.close()


def test_the_log_columns_are_the_schemas():
    store = DuckDBStore(":memory:")
    StoreSink(store, Hasher(b"k"))
    assert store.query("SELECT * FROM gateway_log").schema.names == GATEWAY_LOG_SCHEMA.names
