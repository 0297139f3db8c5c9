"""``python -m distillguard`` is the ``distillguard`` command."""

from distillguard.cli import run

run()
