"""The policy engine: pure, deterministic, and driven entirely by the policy document.

``loader.load_policy`` turns a parsed policy document (``policies/*.yaml``) into a validated
:class:`~app.policy.model.Policy`; ``engine.evaluate`` answers one request against one person's
facts at one instant. Standard library only; time is passed in, never read.
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
    Policy,
    Request,
)

__all__ = [
    "ConsentFact",
    "Decision",
    "Facts",
    "LegalBasis",
    "ObjectionFact",
    "Party",
    "Policy",
    "PolicyError",
    "Request",
    "evaluate",
    "load_policy",
]
