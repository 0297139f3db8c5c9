"""Many genuine people behind one corporate NAT or university network.

Each organization has many accounts (one per employee or student) that all
egress through a handful of addresses in one /24, share an email domain and,
for companies, often the corporate card.  Behaviour is ordinary chat
(:class:`ChatUser`), on office hours for companies and on a student rhythm for
universities: a hard negative for shared-infrastructure signals.

Example:
    >>> CorporateNAT.Knobs(orgs=2, accounts_per_org=30).kind
    'corporate'
"""

from __future__ import annotations

from dataclasses import dataclass

from distillguard.simulate.identity import Account
from distillguard.simulate.personas.chat_user import ChatUser, ChatUserKnobs


@dataclass
class CorporateNATKnobs(ChatUserKnobs):
    orgs: int = 1
    accounts_per_org: int = 30
    kind: str = "corporate"  # corporate | university
    egress_ips: int = 3  # NAT addresses in the org's /24
    shared_card_rate: float = 0.6  # companies often pay with one card
    sessions_per_day: float = 1.5
    mobile_rate: float = 0.0  # everything through the org's NAT (raise to let people work from phones)


class CorporateNAT(ChatUser):
    name = "corporate_nat"
    hard_negative = True
    Knobs = CorporateNATKnobs

    def make_accounts(self) -> list[Account]:
        k: CorporateNATKnobs = self.knobs
        ids, rng = self.ids, self.rng
        accts = []
        self.org_subnets: dict[str, str] = {}
        for _ in range(k.orgs):
            subnet = ids.corporate_subnet()
            egress = [f"{subnet}.{rng.randrange(2, 254)}" for _ in range(max(1, k.egress_ips))]
            country = ids.benign_country()
            tz = ids.tz_for(country)
            if k.kind == "university":
                domain = f"{rng.choice(('state', 'tech', 'poly', 'city'))}{rng.choice(('u', 'uni', 'college'))}.edu"
                org_name = domain.split(".")[0].title() + " University"
            else:
                domain = ids.org_domain()
                org_name = domain.split(".")[0].title() + " Inc."
            self.org_subnets[org_name] = subnet
            card = ids.payment_fingerprint()
            ua = ids.user_agent("browser")
            for _ in range(k.accounts_per_org):
                pay = card if (k.kind == "corporate" and rng.random() < k.shared_card_rate) else "new"
                a = self.new_account(country=country, tz=tz + rng.uniform(-0.5, 0.5), email=ids.person_email(domain), payment=pay,
                                     organization=org_name, ips=[rng.choice(egress)],
                                     ua=ua if rng.random() < 0.6 else None, ua_kinds=k.ua_kinds,
                                     tier="enterprise" if k.kind == "corporate" and rng.random() < 0.5 else None)
                a.egress = egress  # type: ignore[attr-defined]
                accts.append(a)
        profile = ("business", "business", "human") if k.kind == "corporate" else ("evening", "human", "evening")
        self.knobs = k.replace(profile_mix=profile)
        return accts

    def account_ip(self, acct: Account, ts: float) -> str:
        # the NAT picks one of the org's egress addresses per connection
        return self.rng.choice(acct.egress)  # type: ignore[attr-defined]
