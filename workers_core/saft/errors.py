"""What can go wrong building a D406 file, beside the shared XML/schema errors.

NonRetryable (workers_core.errors)
├── SaftInputError       an input record is missing, not JSON, or not the model (file:line)
├── MalformedXml         (workers_core.efactura.errors) not XML, or not a D406 AuditFile
└── UnsafeXml            (workers_core.efactura.errors) a DOCTYPE or entity
WorkersError
└── SchemasUnavailable   (workers_core.efactura.errors) the D406 XSD is missing
"""

from __future__ import annotations

from workers_core.efactura.errors import MalformedXml, SchemasUnavailable, UnsafeXml
from workers_core.errors import NonRetryable

__all__ = ["MalformedXml", "SaftInputError", "SchemasUnavailable", "UnsafeXml"]


class SaftInputError(NonRetryable):
    """Bad accounting input: ``detail`` has ``file`` and ``line`` where one is known."""

    problem_type = "saft-input"
