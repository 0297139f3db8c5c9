"""Who sends the traffic: accounts, keys, IP pools, user agents, emails, payment methods.

Everything is drawn from a caller-supplied :class:`random.Random`, so a persona's
identities are reproducible from the scenario seed.  Ids are random hex, never
numbered per persona, so nothing in an id leaks the label.

The address ranges are plausible allocations (residential ISPs per country,
cloud/hosting egress, university and corporate blocks); they are for
simulation only.

Example:
    >>> import random
    >>> ids = Identities(random.Random(0))
    >>> ids.residential_ip("US").count(".")
    3
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from distillguard.schema import RawAccount

#: Residential ISP /16 blocks per country (home broadband and mobile carriers).
RESIDENTIAL_16: dict[str, tuple[str, ...]] = {
    "US": ("73.12", "73.162", "98.207", "24.16", "67.180", "71.190", "76.102", "174.63", "99.110", "108.28", "172.58", "107.77"),
    "CA": ("174.88", "70.52", "99.228", "142.114"),
    "GB": ("81.104", "86.150", "90.214", "92.40", "109.150"),
    "DE": ("79.214", "84.150", "91.64", "93.216", "178.10", "87.178"),
    "FR": ("82.64", "90.3", "86.246", "109.24", "176.180"),
    "ES": ("83.32", "88.12", "79.144", "95.120"),
    "NL": ("84.84", "77.160", "145.130"),
    "PL": ("83.6", "89.64", "178.42"),
    "IN": ("49.36", "106.51", "117.99", "122.161", "157.34"),
    "BR": ("177.32", "179.108", "187.64", "189.6", "201.17"),
    "JP": ("126.64", "153.160", "180.12", "219.104"),
    "KR": ("211.36", "121.130", "175.192", "1.224"),
    "CN": ("113.88", "117.136", "183.14", "180.160", "223.104", "114.246", "36.110", "120.229"),
    "HK": ("112.118", "203.218", "58.176"),
    "SG": ("116.14", "118.200", "42.60"),
    "RU": ("95.24", "178.140", "85.140", "46.242"),
    "AU": ("101.160", "120.148", "58.108"),
    "MX": ("187.188", "189.203", "201.141"),
    "TW": ("1.160", "114.32", "36.224"),
    "VN": ("113.161", "14.160", "171.224"),
    "AE": ("94.200", "86.98"),
}

#: Cloud and hosting egress /16s (where pipelines, eval CI, routers and datacenter proxies live).
DATACENTER_16: dict[str, tuple[str, ...]] = {
    "aws": ("3.80", "18.208", "52.14", "54.210", "44.192", "35.170"),
    "gcp": ("34.82", "35.188", "34.125", "35.231"),
    "azure": ("20.42", "40.83", "52.168", "13.77"),
    "hetzner": ("65.21", "95.216", "116.202", "88.198"),
    "ovh": ("51.38", "51.77", "54.36", "145.239"),
    "digitalocean": ("159.89", "167.99", "164.92", "138.68"),
    "alibaba": ("47.88", "47.245", "8.209"),
    "tencent": ("43.130", "119.28", "129.226"),
}

#: Country -> hours from UTC (a typical zone; enough for diurnal cycles).
TZ_OFFSET: dict[str, float] = {
    "US": -6, "CA": -5, "GB": 0, "DE": 1, "FR": 1, "ES": 1, "NL": 1, "PL": 1, "IN": 5.5, "BR": -3,
    "JP": 9, "KR": 9, "CN": 8, "HK": 8, "SG": 8, "RU": 3, "AU": 10, "MX": -6, "TW": 8, "VN": 7, "AE": 4,
}

#: Where genuine users come from, roughly API-market shares.
BENIGN_COUNTRY_WEIGHTS: dict[str, float] = {
    "US": 30, "IN": 8, "GB": 6, "DE": 5, "FR": 4, "CA": 4, "BR": 4, "JP": 3, "KR": 3, "ES": 2, "NL": 2,
    "PL": 2, "AU": 2, "SG": 2, "MX": 2, "TW": 1, "VN": 1, "AE": 1, "HK": 1,
}

_OPENAI_PY = ("1.35.3", "1.40.6", "1.45.0", "1.51.2", "1.54.4", "1.57.0", "1.59.7", "1.61.1", "1.63.2", "1.66.3")
_OPENAI_JS = ("4.52.7", "4.67.3", "4.73.1", "4.77.0", "4.85.1")

#: Client user agents: (string, weight).  Browser-like agents come from chat front-ends.
USER_AGENTS: tuple[tuple[str, float], ...] = (
    *((f"OpenAI/Python {v}", 4.0) for v in _OPENAI_PY),
    *((f"AsyncOpenAI/Python {v}", 1.0) for v in _OPENAI_PY[4:]),
    *((f"OpenAI/JS {v}", 2.0) for v in _OPENAI_JS),
    ("python-httpx/0.27.0", 3.0),
    ("python-httpx/0.28.1", 3.0),
    ("python-requests/2.31.0", 3.0),
    ("python-requests/2.32.3", 3.0),
    ("aiohttp/3.9.5", 1.5),
    ("curl/8.5.0", 1.0),
    ("curl/7.81.0", 1.0),
    ("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", 1.0),
    ("axios/1.7.2", 1.5),
    ("Go-http-client/2.0", 1.0),
    ("litellm/1.52.0", 1.0),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 2.0),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", 1.5),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", 1.0),
)

FIRST = (
    "james", "maria", "wei", "li", "anna", "john", "priya", "rahul", "sofia", "lucas", "emma", "noah", "yuki", "hana",
    "min", "jisoo", "carlos", "ana", "pierre", "claire", "hans", "julia", "olga", "ivan", "ahmed", "fatima", "tom",
    "sarah", "david", "laura", "chen", "xin", "kenji", "mateo", "lea", "max", "nina", "omar", "ravi", "elena",
)
LAST = (
    "smith", "garcia", "wang", "zhang", "muller", "schmidt", "kim", "lee", "park", "nguyen", "martin", "bernard",
    "rossi", "silva", "santos", "kumar", "sharma", "patel", "tanaka", "sato", "ivanov", "petrov", "brown", "jones",
    "miller", "davis", "lopez", "gonzalez", "wilson", "chen", "liu", "yang", "huang", "novak", "kowalski", "dubois",
)
WEBMAIL = ("gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com", "proton.me", "qq.com", "163.com", "gmx.de", "yandex.ru", "naver.com")
WEBMAIL_WEIGHTS = (40, 12, 6, 5, 5, 4, 3, 2, 2, 1, 1)
#: Cheap, low-friction domains that bulk sign-ups favour (plus webmail).
BULK_DOMAINS = ("proton.me", "tutanota.com", "mail.com", "gmx.com", "outlook.com", "gmail.com", "yandex.com", "163.com", "qq.com", "cock.li", "tuta.io")
CORP_SUFFIXES = ("labs", "ai", "tech", "data", "systems", "analytics", "soft", "cloud", "works", "io")
WORDS = ("acme", "blue", "north", "vector", "lumen", "orbit", "pine", "quartz", "rapid", "summit", "tidal", "vertex", "nimbus", "cedar", "ember", "harbor", "kite", "maple", "nova", "polar")

TIERS = ("free", "tier1", "tier2", "tier3", "tier4", "enterprise")


def hex_id(rng: random.Random, n: int = 16) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


@dataclass
class Account:
    """One simulated provider account and the identity it presents."""

    account_id: str
    api_key: str
    country: str
    tz: float  # hours from UTC of the account's people (or its main customers)
    user_agent: str
    created_at: float
    email: str
    payment_fingerprint: str | None
    verification_tier: str
    organization: str | None = None
    ips: list[str] = field(default_factory=list)  # addresses it sends from (sticky pool)

    def raw(self) -> RawAccount:
        return RawAccount(
            account_id=self.account_id,
            created_at=round(self.created_at, 3),
            payment_fingerprint=self.payment_fingerprint,
            email=self.email,
            country=self.country,
            verification_tier=self.verification_tier,
            organization=self.organization,
        )


class Identities:
    """Draws identities from one seeded RNG.

    Example:
        >>> import random
        >>> ids = Identities(random.Random(1))
        >>> ids.api_key().startswith("sk-")
        True
    """

    def __init__(self, rng: random.Random):
        self.rng = rng

    # ---- ids
    def account_id(self) -> str:
        return "acct_" + hex_id(self.rng, 16)

    def api_key(self) -> str:
        return "sk-proj-" + hex_id(self.rng, 32)

    def payment_fingerprint(self) -> str:
        return "pmfp_" + hex_id(self.rng, 16)

    def end_user(self, prefix: str = "u") -> str:
        return f"{prefix}_{hex_id(self.rng, 12)}"

    # ---- places
    def benign_country(self) -> str:
        return self.rng.choices(list(BENIGN_COUNTRY_WEIGHTS), weights=list(BENIGN_COUNTRY_WEIGHTS.values()))[0]

    def tz_for(self, country: str) -> float:
        # people within a country spread over a couple of zones (US coasts, etc.)
        spread = 3.0 if country in ("US", "CA", "RU", "BR", "AU") else 0.0
        return TZ_OFFSET.get(country, 0.0) + self.rng.uniform(-spread / 2, spread / 2)

    def residential_ip(self, country: str | None = None) -> str:
        country = country or self.benign_country()
        b16 = self.rng.choice(RESIDENTIAL_16.get(country) or RESIDENTIAL_16["US"])
        return f"{b16}.{self.rng.randrange(0, 256)}.{self.rng.randrange(1, 255)}"

    def datacenter_subnet(self, provider: str | None = None) -> str:
        """A /24 (as 'a.b.c') in a cloud or hosting range."""
        provider = provider or self.rng.choice(list(DATACENTER_16))
        b16 = self.rng.choice(DATACENTER_16[provider])
        return f"{b16}.{self.rng.randrange(0, 256)}"

    def datacenter_ip(self, provider: str | None = None) -> str:
        return f"{self.datacenter_subnet(provider)}.{self.rng.randrange(2, 255)}"

    def corporate_subnet(self) -> str:
        """A /24 of a company or university network (business ISP or institutional block)."""
        first = self.rng.choice((12, 38, 64, 128, 129, 130, 131, 137, 141, 144, 149, 152, 155, 192, 193, 194, 195, 198, 199, 204, 206, 207, 208, 209, 212, 213, 217))
        return f"{first}.{self.rng.randrange(0, 256)}.{self.rng.randrange(0, 256)}"

    def residential_proxy_pool(self, size: int, countries: list[str] | None = None) -> list[str]:
        """Exit addresses of a residential proxy service: real-looking home IPs spread over countries."""
        countries = countries or list(RESIDENTIAL_16)
        return [self.residential_ip(self.rng.choice(countries)) for _ in range(size)]

    def datacenter_proxy_pool(self, size: int, subnets: int = 4) -> list[str]:
        """A datacenter proxy pool: many addresses packed into a few hosting /24s."""
        nets = [self.datacenter_subnet(self.rng.choice(("ovh", "hetzner", "digitalocean", "alibaba", "tencent"))) for _ in range(subnets)]
        return [f"{self.rng.choice(nets)}.{self.rng.randrange(2, 255)}" for _ in range(size)]

    # ---- clients
    def user_agent(self, kinds: str = "any") -> str:
        """A client UA; ``kinds`` = 'sdk' (programmatic only), 'browser', or 'any'."""
        pool = USER_AGENTS
        if kinds == "sdk":
            pool = tuple(u for u in USER_AGENTS if not u[0].startswith("Mozilla"))
        elif kinds == "browser":
            pool = tuple(u for u in USER_AGENTS if u[0].startswith("Mozilla"))
        return self.rng.choices([u for u, _ in pool], weights=[w for _, w in pool])[0]

    # ---- people and money
    def person_email(self, domain: str | None = None) -> str:
        r = self.rng
        local = r.choice((f"{r.choice(FIRST)}.{r.choice(LAST)}", f"{r.choice(FIRST)}{r.choice(LAST)}", f"{r.choice(FIRST)[0]}{r.choice(LAST)}", f"{r.choice(FIRST)}{r.randrange(1, 999)}"))
        domain = domain or r.choices(WEBMAIL, weights=WEBMAIL_WEIGHTS)[0]
        return f"{local}@{domain}"

    def bulk_email(self, pattern: str, i: int) -> str:
        """Sign-up emails of an account farm: a shared local-part pattern and numbering."""
        r = self.rng
        domain = r.choice(BULK_DOMAINS)
        if pattern == "numbered":
            return f"{pattern_stem(r)}{i:04d}@{domain}"
        if pattern == "random":
            return f"{hex_id(r, 10)}@{domain}"
        return self.person_email(domain)  # "human": farms buy or fake real-looking names

    def org_domain(self) -> str:
        r = self.rng
        return f"{r.choice(WORDS)}{r.choice(CORP_SUFFIXES)}.{r.choice(('com', 'io', 'ai', 'co', 'de', 'net'))}"

    def created_at(self, before_ts: float, max_age_days: float = 720, min_age_days: float = 1) -> float:
        """An established account: created some time (log-uniformly) before ``before_ts``."""
        import math

        age = math.exp(self.rng.uniform(math.log(min_age_days), math.log(max_age_days)))
        return before_ts - age * 86400.0


def pattern_stem(rng: random.Random) -> str:
    return rng.choice(FIRST) + rng.choice(("dev", "ai", "lab", "work", "data", "x"))
