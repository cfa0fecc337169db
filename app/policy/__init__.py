"""The policy engine: pure, deterministic, and driven entirely by the policy document.

``loader.load_policy`` turns a parsed policy document (``policies/*.yaml``) into a validated
:class:`~app.policy.model.Policy`; ``engine.evaluate`` answers one request against one person's
facts at one instant, ``reach.reach`` what a consent being captured can never carry, and
``Policy.retention.kept_until`` how long their records are kept.
Standard library only; time is passed in, never read.
"""

from app.policy.engine import evaluate
from app.policy.errors import PolicyError
from app.policy.loader import load_policy
from app.policy.model import (
    ConsentFact,
    Decision,
    Facts,
    LegalBasis,
    ObjectionFact,
    Party,
    Period,
    Policy,
    Request,
    Retention,
)

__all__ = [
    "ConsentFact",
    "Decision",
    "Facts",
    "LegalBasis",
    "ObjectionFact",
    "Party",
    "Period",
    "Policy",
    "PolicyError",
    "Request",
    "Retention",
    "evaluate",
    "load_policy",
]
