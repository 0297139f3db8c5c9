from pathlib import Path

import pytest

from distillguard.data.sample.build import build_sample
from distillguard.errors import InputError
from distillguard.simulate.corpora import PERMISSIVE_SOURCES, SAMPLE_DIR, load_corpora
from distillguard.simulate.pools import harvest_pool

FULL = Path("/work/shared/corpora")


def test_sample_loads_without_shared(sample_corpora):
    c = sample_corpora
    assert c.origin == "bundled-sample"
    assert set(c.conversations) | set(c.prompts) <= set(PERMISSIVE_SOURCES)
    assert len(c.conversations["oasst"]) > 100 and len(c.prompts["gsm8k_train"]) > 500
    assert all(conv.turns and all(u and a for u, a in conv.turns) for conv in c.conversations["oasst"])
    assert len(c.answer_bank()) > 500


def test_sample_is_small():
    total = sum(p.stat().st_size for p in SAMPLE_DIR.glob("*.jsonl.gz"))
    assert 0 < total <= 1_500_000


def test_missing_explicit_path_raises(tmp_path):
    with pytest.raises(InputError):
        load_corpora(tmp_path / "nope")


def test_harvest_pool_has_no_repeats(sample_corpora):
    pool = harvest_pool(sample_corpora, seed=1)
    assert len({(p.source, p.pid) for p in pool}) == len(pool)
    assert len({p.capability for p in pool}) >= 4  # broad coverage


@pytest.mark.skipif(not FULL.is_dir(), reason="full corpora not present")
def test_sample_rebuild_is_deterministic(tmp_path):
    a = build_sample(FULL, tmp_path / "a")
    b = build_sample(FULL, tmp_path / "b")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    # and equals what is bundled
    assert {p.name: p.read_bytes() for p in a} == {p.name: p.read_bytes() for p in SAMPLE_DIR.glob("*.jsonl.gz")}


@pytest.mark.skipif(not FULL.is_dir(), reason="full corpora not present")
def test_full_corpora_parse():
    c = load_corpora(FULL)
    assert c.origin != "bundled-sample"
    assert len(c.conversations["sharegpt_chat"]) > 1000 and len(c.prompts["mmlu"]) > 10000
