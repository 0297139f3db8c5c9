import random

from distillguard.simulate.responses import ReplySynth, cut_to_tokens, est_tokens, prompt_tokens


def test_token_estimates():
    assert est_tokens("a" * 400) == 100
    assert est_tokens("") == 0
    assert est_tokens("汉字" * 50) == 75  # ~0.75 tokens per CJK character
    assert prompt_tokens([{"role": "user", "content": "a" * 40}]) == 3 + 10 + 4


def test_cut_to_tokens():
    text, cut = cut_to_tokens("word " * 1000, 10)
    assert cut and est_tokens(text) <= 11


def test_reasoning_trace_languages(sample_corpora):
    synth = ReplySynth(sample_corpora.answer_bank())
    for lang, marker in (("zh", "步骤"), ("ru", "Шаг"), ("es", "Paso"), ("en", "Step")):
        t = synth.reasoning_trace(random.Random(0), lang, "x = 2\ny = 3\n#### 5", 800, "5")
        assert marker in t and est_tokens(t) >= 700
