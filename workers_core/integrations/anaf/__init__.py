"""ANAF: the public taxpayer lookup (PlatitorTvaRest v9) and OAuth2 for e-Factura/e-Transport.

Modules: ``cui`` (fiscal code check digit), ``errors`` (ANAF's answers as typed errors),
``http`` (one client per host: timeouts, WAF detection, retries, breaker, cluster-wide rate
limits), ``oauth`` (token store and rotation-safe refresh), ``taxpayer`` (v9 lookup + cache).
"""

from workers_core.integrations.anaf.cui import InvalidCui, is_valid_cui, normalise_cui
from workers_core.integrations.anaf.errors import (
    AnafError,
    AnafNotAuthorised,
    AnafOAuthError,
    AnafRateLimited,
    AnafRejected,
    AnafTemporaryError,
    AnafUnauthorized,
    AnafUnavailable,
    AnafWafRejected,
)
from workers_core.integrations.anaf.taxpayer import CompanyRecord, LookupResult, TaxpayerLookup

__all__ = [
    "AnafError",
    "AnafNotAuthorised",
    "AnafOAuthError",
    "AnafRateLimited",
    "AnafRejected",
    "AnafTemporaryError",
    "AnafUnauthorized",
    "AnafUnavailable",
    "AnafWafRejected",
    "CompanyRecord",
    "InvalidCui",
    "LookupResult",
    "TaxpayerLookup",
    "is_valid_cui",
    "normalise_cui",
]
