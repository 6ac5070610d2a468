"""What can go wrong building or validating an e-Factura, importable without lxml or Saxon.

NonRetryable (workers_core.errors)
├── UnsafeXml            a DOCTYPE, an entity or a parser limit: refused before any rule runs
└── MalformedXml         not well-formed XML, or a root that is neither Invoice nor CreditNote
WorkersError
└── SchemasUnavailable   the schemas directory or one of its files is missing: a deployment fault
"""

from __future__ import annotations

from workers_core.errors import NonRetryable, WorkersError


class UnsafeXml(NonRetryable):
    """Refused outright: DTDs and entities can read files or blow up memory (XXE, laughs)."""

    problem_type = "unsafe-xml"


class MalformedXml(NonRetryable):
    problem_type = "malformed-xml"


class SchemasUnavailable(WorkersError):
    """The UBL XSDs or the CIUS-RO rules cannot be found: fix WORKERS_SCHEMAS_DIR."""

    status_code = 503
    problem_type = "schemas-unavailable"
    retryable = False
