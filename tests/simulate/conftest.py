"""Shared fixtures: a small bound scenario on the bundled sample (no /work/shared needed)."""

from __future__ import annotations

import pytest

from distillguard.simulate import build_scenario
from distillguard.simulate.corpora import load_corpora


@pytest.fixture(scope="session")
def sample_corpora():
    return load_corpora(sample=True)


@pytest.fixture(scope="session")
def demo_small(sample_corpora):
    """A 2-day, scale-0.3 demo on the bundled sample, fully materialized once."""
    b = build_scenario("demo", seed=3, corpora=sample_corpora, scale=0.3, days=2)
    events = list(b.events())
    return b, events


def bind(persona, corpora, days: float = 3.0, seed: int = 0, release_day: float = 1.5):
    """Bind one persona to a minimal scenario context (for persona-level tests)."""
    from distillguard.simulate import _synth_for
    from distillguard.simulate.personas.base import ModelCatalog, SimContext
    from distillguard.simulate.timing import DAY, SCENARIO_START

    ctx = SimContext(start_ts=SCENARIO_START, days=days, seed=seed, stream="test", corpora=corpora, synth=_synth_for(corpora),
                     models=ModelCatalog(release_ts=SCENARIO_START + release_day * DAY))
    return persona.bind(ctx)
