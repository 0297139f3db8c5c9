"""A sequential probability ratio test on per-request harvest evidence.

An end user inside a reseller sends few requests at first; waiting for enough of them to compute
stable account-level features (:mod:`distillguard.subaccounts`) lets a low-share campaign harvest
for a day or more before it is judged.  But each request of a harvester already says something: a
fresh single-turn prompt answered at many times its length (more so when the prompt is lifted from
a public benchmark, or the answer is a worked reasoning trace), a request to write out reasoning.  This module accumulates that evidence request by request and decides as soon
as it is conclusive (Wald's sequential test), with the false-alarm rate set by the test's
threshold rather than by a cut fitted to training traffic.

The test.  Under a harvest profile (:class:`HarvestProfile`: a weight per indicator) each request
gets a score ``s = sum(weight_j * indicator_j)``.  The profile's alternative ("this unit harvests")
is the benign request distribution *exponentially tilted* towards its indicators: a request with
score ``s`` is ``exp(s) / Z`` times as likely under it, where ``Z`` is the mean of ``exp(s)`` over
the reference traffic (the shared account's own requests, mostly genuine).  A unit's log likelihood
ratio after ``n`` requests is ``LLR = sum(s_i) - n * ln Z``; the profiles (campaigns harvest
different things) are combined as an equal-weight mixture.  Under the null (the unit's requests
look like the reference traffic) ``exp(LLR)`` is a nonnegative martingale with mean 1, so by
Ville's inequality the chance that it *ever* reaches ``1 / a`` is at most ``a``, however long it is
watched.  An account spends its false-alarm budget ``alpha`` on two tests, half each:

* one unit alone (Bonferroni over the account's ``k`` units): a unit is flagged when
  ``LLR >= ln(2k / alpha)``;
* all units pooled (:meth:`SequentialTest.pooled`): the alternative is that each unit harvests,
  independently, with some chance ``w`` (a campaign spread over several end-user ids), whose
  likelihood ratio ``prod_i (1 - w + w exp(LLR_i))`` is again a mean-1 martingale under the null;
  mixed over a fixed grid of ``w``, it flags the account when it reaches ``ln(2 / alpha)``, and
  with it the units that carry the evidence (posterior chance of harvesting at least
  ``attribution``, 0.9).  Four
  ids with 7 nats each are conclusive together long before any of them is alone.  The weights only set the test's
power; the bound holds whatever they are.  Correlated indicators (a long fresh answer is often to a
benchmark prompt) cost nothing: ``Z`` is taken over the joint score, not indicator by indicator.
The statistic is a sum over the unit's requests, so at any cut it does not depend on their order.

What keeps the bound honest in practice:

* only evidence that varies request by request is used.  Settings a client sends with every
  request (``max_tokens``, ``logprobs``, ``n``, tools) would repeat the same evidence once per
  request for a genuine end user whose client happens to set them, and convict them by volume;
* ``Z`` is estimated from the account's traffic, so its upper confidence bound is used
  (``z_sigmas`` standard errors above the mean): a small reference costs power, not false alarms;
* no indicator is a habit genuine customers keep on every request (see ``INDICATORS``): an API
  user sending only fresh prompts, an evaluation pipeline on benchmark prompts, an LLM-as-judge
  pipeline, long chats: all drift downward, however many requests they send;
* a genuine user whose requests are *somewhat* more often fresh-and-long than the account's also
  drifts downward: ``ln Z`` exceeds the score of all but clearly harvest-shaped requests, so only
  a unit where most requests are (above about a third, in a reseller where a tenth are) gains.

What it cannot do: evidence accrues at best about 2 nats per request (a genuine customer's
one-shot instruction prompts look like a harvester's, only rarer; the campaign's own requests
raise the reference's ``Z`` too), one unit of a few hundred needs about 13 nats alone and the
pooled test 7.6 over all of them, so a campaign spread thin over many end-user ids at a low share
is still seen hours, not minutes, after it starts.  Grouping the ids of one campaign by what
their prompts share is not a valid pooling (customers' instruction prompts share openings too):
the pooled test needs no grouping, only that genuine units are independent.  And a customer
whose every request is a fresh prompt answered at length is, request by request, what a
harvester looks like: such a run is flagged, with evidence that says exactly that.  Harvesting
that shows only in client settings (logprobs, n > 1) or in breadth is left to the account model.

Example:
    >>> test = SequentialTest(alpha=0.001)
    >>> round(test.threshold(1000), 2)      # ln(1000 / 0.0005): one end user alone, in an account of 1,000
    14.51
    >>> [p.name for p in test.profiles][:2]
    ['answer_harvest', 'reasoning_harvest']
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from distillguard.store.sql import exact_stddev_samp, exact_sum

_FRESH = "coalesce(n_assistant_turns, 0) = 0"
_LONG = "coalesce(completion_tokens, 0) >= greatest(4 * coalesce(prompt_tokens, 0), 256)"

#: Per-request harvest indicators: name -> (SQL boolean over one stored event, what it means).
#: Each is harvest-shaped *on its own*: a genuine customer who shows one of them on every request
#: would be flagged by the test in time, so none may be a behaviour genuine customers commonly
#: show throughout (a fresh prompt alone, a benchmark prompt alone, a math answer that is a worked
#: solution, a grading prompt: evaluation pipelines and math students do those).  Only evidence
#: that varies request by request, in SQL DuckDB and Spark share.
INDICATORS: dict[str, tuple[str, str]] = {
    "fresh_long_answer": (f"{_FRESH} AND {_LONG}", "fresh single-turn prompts answered at 4x their length or more (256+ tokens)"),
    "fresh_long_benchmark": (
        f"{_FRESH} AND {_LONG} AND benchmark_name IS NOT NULL",
        "of them public benchmark / instruction-set prompts",
    ),
    "fresh_long_reasoning": (
        f"{_FRESH} AND {_LONG} AND coalesce(completion_has_reasoning, false)",
        "of them answered with a worked reasoning trace",
    ),
    "reasoning_elicit": ("coalesce(reasoning_elicit, false)", "prompts asking the model to write out its reasoning"),
}


@dataclass(frozen=True)
class HarvestProfile:
    """One shape of harvesting traffic: the indicators its requests show, each with a weight in nats.

    A weight says how much likelier (log scale) a request of this kind of campaign is to show the
    indicator than a typical request; it is written from how the harvesting works, not fitted.
    """

    name: str
    description: str
    weights: tuple[tuple[str, float], ...]

    def score_sql(self) -> str:
        """SQL for one request's harvest score under this profile (sum of the weights it shows)."""
        terms = [f"CASE WHEN {INDICATORS[name][0]} THEN {float(w)!r} ELSE 0.0 END" for name, w in self.weights if w]
        return " + ".join(terms) if terms else "0.0"


#: Campaigns differ in what they harvest, so the alternative is a mixture of profiles: a unit's
#: evidence is that of the profile its requests fit best, less ln(number of profiles).
PROFILES: tuple[HarvestProfile, ...] = (
    HarvestProfile(
        "answer_harvest", "fresh prompts answered at length",
        (("fresh_long_answer", 2.5), ("fresh_long_benchmark", 1.0), ("fresh_long_reasoning", 1.0)),
    ),  # fmt: skip
    HarvestProfile("reasoning_harvest", "reasoning traces asked for", (("reasoning_elicit", 3.0), ("fresh_long_reasoning", 1.0))),
)


@dataclass(frozen=True)
class SequentialTest:
    """The harvest profiles tested and the false-alarm budget of the test."""

    profiles: tuple[HarvestProfile, ...] = PROFILES  # the alternative; they set power, not the false-alarm bound
    alpha: float = 0.001  # chance that a genuine account is flagged through any of its units
    z_sigmas: float = 2.0  # the normaliser Z is taken this many standard errors above its estimate
    #: Campaign shares of an account's units the pooled test mixes over (empty: no pooled test, and
    #: the one-unit test gets all of ``alpha``).  A grid fixed in advance: it sets power, not the bound.
    shares: tuple[float, ...] = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)
    #: When the pooled test fires, the end users it names: those at least this likely to harvest
    #: given the account's evidence (each named one is a genuine customer with chance at most 1 - this).
    attribution: float = 0.9

    def __post_init__(self) -> None:
        unknown = sorted({name for p in self.profiles for name, _ in p.weights} - set(INDICATORS))
        if unknown:
            raise ValueError(f"unknown harvest indicator(s) {unknown}; known: {sorted(INDICATORS)}")
        if not self.profiles:
            raise ValueError("at least one harvest profile is needed")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if any(not 0.0 < w < 1.0 for w in self.shares):
            raise ValueError("every campaign share of the pooled test must be in (0, 1)")
        if not 0.5 <= self.attribution < 1.0:
            raise ValueError("attribution must be in [0.5, 1)")

    @property
    def unit_alpha(self) -> float:
        """The one-unit test's share of ``alpha`` (half of it when the pooled test takes the other half)."""
        return self.alpha / 2 if self.shares else self.alpha

    def threshold(self, n_units: int) -> float:
        """Evidence (nats) one unit needs in an account of ``n_units`` units (Bonferroni over them)."""
        return math.log(max(int(n_units), 1) / self.unit_alpha)

    def pooled_threshold(self) -> float:
        """Evidence (nats) the pooled test needs in any account: ``ln(2 / alpha)``."""
        return math.log(2 / self.alpha)

    def pooled(self, llr: np.ndarray) -> tuple[float, np.ndarray]:
        """The pooled evidence of an account's units and each unit's posterior chance of harvesting.

        The alternative: each unit harvests, independently, with chance ``w`` (a campaign spread
        over several end-user ids).  Its likelihood ratio is ``prod_i (1 - w + w exp(LLR_i))``, a
        product of mean-1 martingales under the null, so Ville's bound holds for it too; ``w`` is
        unknown, so the evidence is the equal-weight mixture over ``shares``.  Several units with
        moderate evidence each add up, while the many genuine units cost at most ``-ln(1 - w)``
        each.  The posterior says which units carry it (averaged over ``w`` given the data).

        Example:
            >>> test = SequentialTest()
            >>> nats, post = test.pooled(np.array([7.0, 7.0, 7.0, 7.0] + [-1.0] * 200))
            >>> round(nats, 1), round(test.threshold(204), 1), round(test.pooled_threshold(), 1)
            (8.5, 12.9, 7.6)
            >>> post[:5].round(2).tolist()
            [0.96, 0.96, 0.96, 0.96, 0.01]
        """
        x = np.asarray(llr, dtype="float64")
        if not self.shares or not len(x):
            return 0.0, np.zeros(len(x))
        w = np.asarray(self.shares)[:, None]
        # ln(1 - w + w e^x) per (share, unit), without overflow
        log_factor = np.logaddexp(np.log1p(-w), np.log(w) + x[None, :])
        per_share = log_factor.sum(axis=1)
        top = per_share.max()
        weights = np.exp(per_share - top)
        nats = float(top + np.log(weights.mean()))
        harvests = np.exp(np.log(w) + x[None, :] - log_factor)  # P(unit harvests | its data, w)
        return nats, (weights[:, None] * harvests).sum(axis=0) / weights.sum()

    def combine(self, llr_by_profile: np.ndarray) -> np.ndarray:
        """A unit's evidence from its per-profile LLRs (units x profiles): the equal-weight mixture.

        ``ln(mean_k exp(LLR_k))``: a mixture of likelihood ratios is a likelihood ratio, so the
        false-alarm bound holds; it is within ``ln K`` of the best profile's LLR.

        Example:
            >>> SequentialTest().combine(np.array([[20.0, -5.0]])).round(2).tolist()
            [19.31]
        """
        m = np.asarray(llr_by_profile, dtype="float64").reshape(-1, len(self.profiles))
        top = m.max(axis=1, keepdims=True)
        return (top[:, 0] + np.log(np.exp(m - top).mean(axis=1))) if len(m) else np.zeros(0)

    def units_sql(self, events: str, unit: str) -> str:
        """One row per (account_id, unit): requests, indicator counts, per-profile LLRs, units in the account.

        ``events`` is a relation of stored events (the reference is all of an account's rows in
        it); ``unit`` an SQL expression naming the unit inside the account (e.g. the end user).
        Columns: ``account_id, unit, n, n_success, output_tokens, n_units``, ``n_<indicator>`` per
        indicator and ``llr_<k>`` per profile (in the order of ``profiles``).
        """
        flags = ", ".join(f"CASE WHEN {sql} THEN 1 ELSE 0 END AS f_{name}" for name, (sql, _) in INDICATORS.items())
        counts = ", ".join(f"sum(f_{name}) AS n_{name}" for name in INDICATORS)
        k = range(len(self.profiles))
        scores = ", ".join(f"{p.score_sql()} AS s_{i}" for i, p in enumerate(self.profiles))
        sigmas = float(self.z_sigmas)
        # ln of an upper confidence bound on Z = E[exp(s)] over the account's requests; sums in fixed point,
        # so that evidence (and a flag at the edge) does not change with the order a parallel plan adds rows in
        log_z = ", ".join(
            f"ln({exact_sum(f'exp(s_{i})')} / count(*) + {sigmas!r} * coalesce({exact_stddev_samp(f'exp(s_{i})')}, 0) / sqrt(count(*)))"
            f" AS log_z_{i}" for i in k
        )
        sums = ", ".join(f"{exact_sum(f's_{i}')} AS s_sum_{i}" for i in k)
        llrs = ", ".join(f"u.s_sum_{i} - u.n * r.log_z_{i} AS llr_{i}" for i in k)
        return f"""
WITH scored AS (
  SELECT account_id, {unit} AS unit, {scores}, {flags},
    CASE WHEN coalesce(status, 'success') = 'success' THEN 1 ELSE 0 END AS ok, coalesce(completion_tokens, 0) AS out_tokens
  FROM {events} e
),
ref AS (SELECT account_id, {log_z} FROM scored GROUP BY account_id),
units AS (
  SELECT account_id, unit, count(*) AS n, sum(ok) AS n_success, sum(out_tokens) AS output_tokens, {sums}, {counts}
  FROM scored GROUP BY account_id, unit
)
SELECT u.account_id, u.unit, u.n, u.n_success, u.output_tokens, {", ".join(f"u.n_{name}" for name in INDICATORS)}, {llrs},
  count(*) OVER (PARTITION BY u.account_id) AS n_units
FROM units u JOIN ref r ON u.account_id = r.account_id
"""

    def describe(self, counts: dict[str, int], n: int, profile: int) -> str:
        """What a unit's requests showed, for the profile that fits them best.

        Example:
            >>> SequentialTest().describe({"fresh_long_answer": 12, "fresh_long_benchmark": 5}, 14, 0)
            'fresh prompts answered at length: 12 of 14 fresh single-turn prompts answered at 4x their length or more (256+ tokens), 5 of them public benchmark / instruction-set prompts'
        """
        p = self.profiles[profile]
        parts = []
        for name, w in p.weights:
            c, what = counts.get(name, 0), INDICATORS[name][1]
            if w > 0 and c:
                parts.append(f"{c} {what}" if what.startswith("of them") else f"{c} of {n} {what}")
        return f"{p.description}: " + (", ".join(parts) or "no harvest indicator")
