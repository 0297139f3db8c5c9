"""Hydra farms: partitioned datasets, per-account limits, shared infrastructure; NAT orgs share a /24."""

from collections import Counter, defaultdict

from distillguard.simulate.personas.corporate_nat import CorporateNAT
from distillguard.simulate.personas.hydra import Hydra
from distillguard.simulate.timing import DAY
from tests.simulate.conftest import bind


def test_hydra_partitions_dataset_and_respects_limits(sample_corpora):
    k = Hydra.Knobs(accounts=80, requests_per_account_day=30, daily_cap=40, rpm_cap=2, payment_group=10)
    h = bind(Hydra(k, key="h", campaign_id="c"), sample_corpora, days=2)
    events = list(h.events())
    assert len(events) > 80 * 30 * 2 * 0.7
    owner: dict[str, str] = {}
    per_day: Counter = Counter()
    last = defaultdict(lambda: -1e18)
    for e in events:
        prompt = e["messages"][-1]["content"]
        assert owner.setdefault(prompt, e["account_id"]) == e["account_id"], "prompt reused across accounts"
        day = int((e["ts"] - h.ctx.start_ts) // DAY)
        per_day[(e["account_id"], day)] += 1
        assert e["ts"] - last[e["account_id"]] >= 60 / k.rpm_cap - 1e-6
        last[e["account_id"]] = e["ts"]
    assert max(per_day.values()) <= k.daily_cap
    # shared payment fingerprints in subgroups, one client build, accounts made shortly before the campaign
    pays = Counter(a["payment_fingerprint"] for a in h.accounts() if a["payment_fingerprint"])
    assert max(pays.values()) >= 5
    assert len({e["user_agent"] for e in events}) == 1
    assert all(h.ctx.start_ts - 5 * DAY < a["created_at"] < h.ctx.start_ts for a in h.accounts())
    assert len({e["ip"] for e in events}) > 50  # rotating proxy pool


def test_hydra_round_robin_is_load_balanced(sample_corpora):
    h = bind(Hydra(Hydra.Knobs(accounts=50, requests_per_account_day=20), key="h2", campaign_id="c"), sample_corpora, days=2)
    counts = Counter(e["account_id"] for e in h.events())
    assert len(counts) == 50 and max(counts.values()) - min(counts.values()) <= 3


def test_nat_accounts_share_one_subnet(sample_corpora):
    p = bind(CorporateNAT(CorporateNAT.Knobs(orgs=2, accounts_per_org=10), key="nat"), sample_corpora, days=2)
    events = list(p.events())
    org_of = {a["account_id"]: a["organization"] for a in p.accounts()}
    subnets = defaultdict(set)
    for e in events:
        subnets[org_of[e["account_id"]]].add(e["ip"].rsplit(".", 1)[0])
    assert len(subnets) == 2 and all(len(s) == 1 for s in subnets.values())
    assert len({e["account_id"] for e in events}) > 10
