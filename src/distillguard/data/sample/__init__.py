"""A small, permissively licensed sample of the public corpora, bundled for the demo and tests.

See ``ATTRIBUTION.md`` for sources and licenses and :mod:`distillguard.data.sample.build`
for the deterministic rebuild from the full corpora.
"""
