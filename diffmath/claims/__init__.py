"""Every claim of the suite, registered once. Importing this package registers them all."""

from diffmath.claims.registry import (
    CheckResult,
    Claim,
    Kind,
    Measurement,
    Outcome,
    Source,
    all_claims,
    chapters,
    get,
    register,
    select,
    verify_claim,
)
from diffmath.claims import part16, part17, part18, part19, part20, part21, part21_amed, part22, part23, part24, toy_lab  # noqa: F401  (importing registers the claims)
from diffmath.claims import essay_multimodal  # noqa: F401  (the multimodal essay, claims M.*)

__all__ = [
    "CheckResult",
    "Claim",
    "Kind",
    "Measurement",
    "Outcome",
    "Source",
    "all_claims",
    "chapters",
    "get",
    "register",
    "select",
    "verify_claim",
]
