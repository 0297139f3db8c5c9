"""Every inline example in the lexicon (positives and negatives per flag and language) holds."""

from __future__ import annotations

import pytest

from distillguard.features import lexicon
from distillguard.features.text import measure_texts


def _cases():
    for flag, langs in lexicon.EXAMPLES.items():
        for lang, groups in langs.items():
            for key, want in (("pos", True), ("neg", False)):
                for text in groups.get(key, []):
                    yield pytest.param(flag, text, want, id=f"{flag}-{lang}-{key}-{text[:30]}")


@pytest.mark.parametrize(("flag", "text", "want"), list(_cases()))
def test_inline_example(flag, text, want):
    if flag == "completion_has_reasoning":
        cols = measure_texts(["question"], [text], benchmark_index=False)
    else:
        cols = measure_texts([text], [None], benchmark_index=False)
    assert bool(cols[flag][0]) is want


def test_examples_cover_required_languages():
    required = {"en", "zh", "ja", "ko", "ru", "es", "fr", "de", "pt", "it", "ar", "hi", "vi", "tr", "id", "pl", "nl"}
    have = set(lexicon.EXAMPLES["reasoning_elicit"])
    assert required <= have
    for lang in required:
        groups = lexicon.EXAMPLES["reasoning_elicit"][lang]
        assert groups["pos"] and groups["neg"], lang
        assert lang in lexicon.CUES["reason.strong"], lang


def test_expand_braces():
    assert lexicon.expand("a {b|c} d") == ["a b d", "a c d"]
    assert lexicon.expand("x{| y}") == ["x", "x y"]
    assert lexicon.expand_all(["a {b|b}"]) == ["a b"]


def test_rules_reference_known_classes():
    for clauses in lexicon.RULES.values():
        for clause in clauses:
            for term in clause:
                names = [term.lstrip("!")] if isinstance(term, str) else list(term[1:3])
                for name in names:
                    assert name in lexicon.CUES, name


def test_batch_matches_single():
    """Cue detection of a prompt does not depend on its neighbours in the batch."""
    texts = [t for langs in lexicon.EXAMPLES["reasoning_elicit"].values() for g in langs.values() for t in g]
    batch = measure_texts(texts, [None] * len(texts), benchmark_index=False)["reasoning_elicit"]
    single = [bool(measure_texts([t], [None], benchmark_index=False)["reasoning_elicit"][0]) for t in texts]
    assert batch.tolist() == single
