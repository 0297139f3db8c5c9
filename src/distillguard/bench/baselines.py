"""Text-based baselines from the literature, for the quality benchmark.

Both baselines read the prompt text, which the benchmark has because it generates the traffic
(distillguard itself never keeps text).  Prompts are embedded with ``wordllama`` (a static
embedding model whose weights ship inside its wheel), L2-normalised, each distinct prompt once.

* :class:`PradaBaseline` - PRADA (Juuti et al., "PRADA: Protecting against DNN Model Stealing
  Attacks", EuroS&P 2019), adapted to text: the distribution of each query's minimum distance to
  the account's earlier queries is tested for normality (Shapiro-Wilk); score = 1 - W.
* :class:`MmdBaseline` - a window two-sample test in the spirit of MMD-based distillation
  detectors: the account's last ``window`` queries vs a fixed reference sample of the population's
  queries; unbiased MMD^2 with an RBF kernel, median-heuristic bandwidth.

Both follow :class:`TextBaseline`: ``fit`` sees the whole (unlabeled) population, ``score``
returns one float per account, higher = more suspicious.

Example:
    >>> from distillguard.simulate import generate_events                       # doctest: +SKIP
    >>> prompts = collect_prompts(generate_events("demo", corpora="bundled"))   # doctest: +SKIP
    >>> mmd = MmdBaseline(); mmd.fit(prompts); scores = mmd.score(prompts)      # doctest: +SKIP
"""

from __future__ import annotations

import math
import random
import warnings
from collections import deque
from collections.abc import Iterable
from typing import Any, Literal, Protocol

import numpy as np

from distillguard.schema import RawEvent

__all__ = ["TextBaseline", "PradaBaseline", "MmdBaseline", "collect_prompts", "embed_texts", "clear_cache", "text_baselines"]

#: Characters of a prompt that are embedded (bounds the tokenizer's cost on long documents).
MAX_CHARS = 1000
#: Embeddings kept between calls (both baselines embed the same prompts); cleared when full.
CACHE_SIZE = 200_000

_MODEL: Any = None
_CACHE: dict[str, np.ndarray] = {}


class TextBaseline(Protocol):
    """A per-account baseline that scores accounts from their prompt texts."""

    name: str

    def fit(self, prompts_by_account: dict[str, list[str]]) -> None: ...

    def score(self, prompts_by_account: dict[str, list[str]]) -> dict[str, float]: ...


def _content_text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(_content_text(p.get("text") if isinstance(p, dict) else p) for p in content)
    return str(content)


def collect_prompts(events: Iterable[RawEvent], max_per_account: int = 500) -> dict[str, list[str]]:
    """The text of the last user message of each event, grouped by account, oldest first.

    Keeps each account's *last* ``max_per_account`` prompts in stream order (deterministic: a
    bounded deque per account).  The account is ``account_id``, else ``api_key``, else
    ``end_user``; events with none of them, or without a user message, are skipped.
    """
    out: dict[str, deque[str]] = {}
    for ev in events:
        acct = ev.get("account_id") or ev.get("api_key") or ev.get("end_user")
        if not acct:
            continue
        text = None
        for m in reversed(ev.get("messages") or []):
            if m.get("role") == "user":
                text = _content_text(m.get("content"))
                break
        if text is None:
            continue
        q = out.get(str(acct))
        if q is None:
            q = out[str(acct)] = deque(maxlen=max(1, max_per_account))
        q.append(text)
    return {a: list(q) for a, q in out.items()}


def _model() -> Any:
    """The wordllama model, loaded once per process from the files inside its wheel (no network)."""
    global _MODEL
    if _MODEL is None:
        import pathlib

        import wordllama
        from wordllama import WordLlama

        _MODEL = WordLlama.load(cache_dir=pathlib.Path(wordllama.__file__).parent, disable_download=True)
    return _MODEL


def _pool(texts: list[str]) -> np.ndarray:
    """wordllama's embedding (mean of the token vectors), without its per-batch padding.

    ``WordLlama.embed`` pads every batch to its longest text and gathers a (batch, len, 256)
    tensor, which is slow on long prompts; a sparse token-count matrix times the embedding table
    computes the same mean pooling in time linear in the tokens.
    """
    from scipy import sparse

    model = _model()
    table = model.embedding
    tok = model.tokenizer.__class__.from_str(model.tokenizer.to_str())  # private copy: no padding
    tok.no_padding()
    tok.no_truncation()
    out = np.empty((len(texts), table.shape[1]), dtype=np.float32)
    step = 8192
    for start in range(0, len(texts), step):
        enc = tok.encode_batch(texts[start:start + step], add_special_tokens=False)
        lens = np.fromiter((len(e.ids) for e in enc), dtype=np.int64, count=len(enc))
        ids = np.fromiter((i for e in enc for i in e.ids), dtype=np.int64, count=int(lens.sum()))
        np.clip(ids, 0, table.shape[0] - 1, out=ids)
        rows = np.repeat(np.arange(len(enc)), lens)
        counts = sparse.csr_matrix((np.ones(len(ids), dtype=np.float32), (rows, ids)), shape=(len(enc), table.shape[0]))
        out[start:start + len(enc)] = (counts @ table) / np.maximum(lens, 1)[:, None]
    return out


def embed_texts(texts: list[str]) -> np.ndarray:
    """L2-normalised float32 embeddings (n, 256); each distinct text is embedded once.

    Texts are cut to their first :data:`MAX_CHARS` characters.
    """
    if not texts:
        return np.zeros((0, 256), dtype=np.float32)
    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))
    uniq = list(index)
    cached = {t: _CACHE[t] for t in uniq if t in _CACHE}  # taken before a full cache is cleared below
    new = [t for t in uniq if t not in cached]
    if new:
        emb = _pool([t[:MAX_CHARS] if t.strip() else "(empty)" for t in new])
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        if len(_CACHE) + len(new) > CACHE_SIZE:
            _CACHE.clear()
        fresh = dict(zip(new, emb))
        if len(new) <= CACHE_SIZE:
            _CACHE.update(fresh)
    else:
        fresh = {}
    out = np.stack([fresh[t] if t in fresh else cached[t] for t in uniq])
    return out[inverse]


def clear_cache() -> None:
    """Forget the cached embeddings."""
    _CACHE.clear()


def _one_blas_thread() -> Any:
    """Single-threaded BLAS: the many small per-account products are far slower with threads."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _embed_by_account(prompts_by_account: dict[str, list[str]], keep: int | None = None) -> dict[str, np.ndarray]:
    """Embeddings per account (each account's last ``keep`` prompts), in one batch."""
    accounts = sorted(prompts_by_account)
    chunks = [prompts_by_account[a][-keep:] if keep else prompts_by_account[a] for a in accounts]
    emb = embed_texts([t for c in chunks for t in c])
    out, i = {}, 0
    for a, c in zip(accounts, chunks):
        out[a] = emb[i:i + len(c)]
        i += len(c)
    return out


# ---------------------------------------------------------------------------------------- PRADA


def prada_distances(emb: np.ndarray) -> np.ndarray:
    """PRADA's minimum distances for one stream of queries (Juuti et al. 2019, Algorithm 1).

    With a single class (text queries have no predicted class; the paper keeps one growing set
    per class): the growing set G starts with the first query and threshold T = 0.  For each next
    query x, d = min over y in G of ||x - y|| is appended to D (every query contributes); if
    d > T, x joins G, d joins D_G, and T = max(T, mean(D_G) - std(D_G)).  Returns D.
    """
    n = len(emb)
    if n < 2:
        return np.zeros(0)
    gram = emb @ emb.T
    dist = np.sqrt(np.maximum(2.0 - 2.0 * gram, 0.0))  # L2 between unit vectors
    mind = dist[0].copy()  # running min distance of every query to the growing set
    out = np.empty(n - 1)
    threshold, s1, s2, k = 0.0, 0.0, 0.0, 0
    for i in range(1, n):
        d = float(mind[i])
        out[i - 1] = d
        if d > threshold:
            np.minimum(mind, dist[i], out=mind)
            k += 1
            s1 += d
            s2 += d * d
            mean = s1 / k
            std = math.sqrt(max(s2 / k - mean * mean, 0.0))
            threshold = max(threshold, mean - std)
    return out


class PradaBaseline:
    """PRADA-style distance test (Juuti et al. 2019) on prompt embeddings.

    Per account: its queries in order (at most the last ``max_queries``), the minimum L2
    distances of :func:`prada_distances`, and the Shapiro-Wilk statistic W of those distances;
    score = 1 - W (the paper flags W < delta, i.e. score > 1 - delta).  Benign query streams give
    roughly normal distances; synthetic/sweeping streams do not.  Accounts with fewer than
    ``min_queries`` queries get ``neutral`` (0: the test cannot fire on them; the paper waits
    for 100 queries).  A constant distance series (e.g. one prompt repeated) gives W = 1.
    """

    name = "prada"

    def __init__(self, *, min_queries: int = 20, max_queries: int = 500, neutral: float = 0.0, delta: float = 0.9):
        self.min_queries, self.max_queries, self.neutral, self.delta = min_queries, max_queries, neutral, delta
        #: Operating threshold on the score: W < delta  <=>  score > 1 - delta.
        self.threshold: float | None = 1.0 - delta

    def fit(self, prompts_by_account: dict[str, list[str]]) -> None:
        """Nothing to fit: PRADA judges each account's stream on its own."""

    def score(self, prompts_by_account: dict[str, list[str]]) -> dict[str, float]:
        with _one_blas_thread():
            return self._score(prompts_by_account)

    def _score(self, prompts_by_account: dict[str, list[str]]) -> dict[str, float]:
        from scipy.stats import shapiro

        long = {a: p for a, p in prompts_by_account.items() if len(p) >= self.min_queries}
        embs = _embed_by_account(long, keep=self.max_queries)
        out = {a: float(self.neutral) for a in prompts_by_account}
        for a, e in embs.items():
            d = prada_distances(e)
            if len(d) < 3 or np.ptp(d) < 1e-9:
                out[a] = 0.0
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w = float(shapiro(d).statistic)
            out[a] = float(min(max(1.0 - w, 0.0), 1.0)) if w == w else float(self.neutral)
        return out


# ------------------------------------------------------------------------------------------ MMD


def _sqdist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.maximum(2.0 - 2.0 * (x @ y.T), 0.0)  # unit vectors


class MmdBaseline:
    """Window MMD two-sample test of an account's queries against the population's.

    ``fit``: a reference sample of ``reference_size`` queries drawn with ``seed`` - an account is
    drawn uniformly, then one of its queries (so a few very heavy accounts do not make up the
    reference), with replacement; RBF bandwidth sigma = median pairwise distance of the reference
    (median heuristic), k(x, y) = exp(-||x - y||^2 / (2 sigma^2)).

    ``score``: per account, the window of its last ``window`` queries (64) vs the reference
    minus the rows drawn from that same account; unbiased MMD^2 (Gretton et al. 2012).
    ``mode="mmd2"`` scores the MMD^2 itself; ``mode="pvalue"`` scores 1 - p with p the
    permutation p-value over ``permutations`` random relabelings (batched as one matrix product
    per account; slower, but comparable across window sizes).  Accounts with fewer than
    ``min_queries`` queries get ``neutral`` (0).
    """

    name = "mmd"

    def __init__(self, *, window: int = 64, reference_size: int = 512, seed: int = 0, min_queries: int = 10,
                 neutral: float = 0.0, mode: Literal["mmd2", "pvalue"] = "mmd2", permutations: int = 100):
        self.window, self.reference_size, self.seed = window, reference_size, seed
        self.min_queries, self.neutral, self.mode, self.permutations = min_queries, neutral, mode, permutations
        self.ref: np.ndarray | None = None
        self.ref_owner: np.ndarray | None = None
        self._owners: dict[str, int] = {}
        self.sigma2 = 1.0
        #: Operating threshold on the score: p < 0.05 in "pvalue" mode; MMD^2 has no fixed one.
        self.threshold: float | None = 0.95 if mode == "pvalue" else None

    def fit(self, prompts_by_account: dict[str, list[str]]) -> None:
        accounts = sorted(a for a, p in prompts_by_account.items() if p)
        if not accounts:
            self.ref, self.ref_owner, self._owners = np.zeros((0, 256)), np.zeros(0, dtype=np.int64), {}
            return
        rng = random.Random(self.seed)
        picks = []
        for _ in range(self.reference_size):
            a = rng.randrange(len(accounts))
            p = prompts_by_account[accounts[a]]
            picks.append((a, p[rng.randrange(len(p))]))
        self.ref = embed_texts([t for _, t in picks]).astype(np.float64)
        self._owners = {a: i for i, a in enumerate(accounts)}
        self.ref_owner = np.array([a for a, _ in picks], dtype=np.int64)
        with _one_blas_thread():
            d2 = _sqdist(self.ref, self.ref)[np.triu_indices(len(self.ref), 1)]
        med = float(np.median(d2)) if d2.size else 0.0
        self.sigma2 = med if med > 1e-12 else 1.0  # sigma^2 = median squared distance = (median distance)^2

    def _kernel(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.exp(-_sqdist(x, y) / (2.0 * self.sigma2))

    def score(self, prompts_by_account: dict[str, list[str]]) -> dict[str, float]:
        with _one_blas_thread():
            return self._score(prompts_by_account)

    def _score(self, prompts_by_account: dict[str, list[str]]) -> dict[str, float]:
        if self.ref is None:
            raise RuntimeError("MmdBaseline.score() before fit()")
        out = {a: float(self.neutral) for a in prompts_by_account}
        long = {a: p for a, p in prompts_by_account.items() if len(p) >= self.min_queries}
        if not long or len(self.ref) < 4:
            return out
        embs = _embed_by_account(long, keep=self.window)
        kyy = self._kernel(self.ref, self.ref)
        rng = np.random.default_rng(self.seed)
        for a, x in sorted(embs.items()):
            x = x.astype(np.float64)
            keep = self.ref_owner != self._owners.get(a, -1)
            y = self.ref[keep]
            m, n = len(x), len(y)
            if n < 2:
                continue
            kxx = self._kernel(x, x)
            kxy = self._kernel(x, y)
            kyy_a = kyy[np.ix_(keep, keep)] if not keep.all() else kyy
            if self.mode == "mmd2":
                out[a] = float(_mmd2_u(kxx.sum(), kyy_a.sum(), kxy.sum(), m, n))
            else:
                k = np.block([[kxx, kxy], [kxy.T, kyy_a]])
                out[a] = _perm_score(k, m, n, self.permutations, rng)
        return out


def _mmd2_u(sxx: Any, syy: Any, sxy: Any, m: int, n: int) -> Any:
    """Unbiased MMD^2 from kernel block sums (diagonals included; k(x, x) = 1 for the RBF)."""
    return (sxx - m) / (m * (m - 1)) + (syy - n) / (n * (n - 1)) - 2.0 * sxy / (m * n)


def _perm_score(k: np.ndarray, m: int, n: int, permutations: int, rng: np.random.Generator) -> float:
    """1 - permutation p-value of the unbiased MMD^2 (first m rows of ``k`` are the window)."""
    total = k.sum()
    k1 = k.sum(axis=1)
    z = np.zeros((m + n, permutations + 1))
    z[:m, 0] = 1.0
    for j in range(1, permutations + 1):
        z[rng.permutation(m + n)[:m], j] = 1.0
    kz = k @ z
    sxx = np.einsum("ij,ij->j", z, kz)
    sx_all = z.T @ k1  # sum over window rows, all columns = sxx + sxy
    sxy = sx_all - sxx
    syy = total - sxx - 2.0 * sxy
    stats = _mmd2_u(sxx, syy, sxy, m, n)
    p = (1.0 + np.sum(stats[1:] >= stats[0])) / (1.0 + permutations)
    return float(1.0 - p)


def text_baselines(**kwargs: Any) -> list[TextBaseline]:
    """The text baselines of the benchmark table, with default settings."""
    return [PradaBaseline(), MmdBaseline(**kwargs)]
