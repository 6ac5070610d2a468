"""SAF-T (D406): accounting data as JSON Lines in, a D406 XML out, validated offline.

    model.py     the input records (pydantic) and the header: company, period, type
    inputs.py    reading a data directory's JSON Lines one record at a time
    writer.py    the streaming writer (``etree.xmlfile``) and the whole-tree baseline
    schemas.py   the D406 XSD, compiled for the D406 or the D406T namespace
    rules.py     business rules checked while streaming (balances, partner ids, period)
    validate.py  one streaming pass: XSD section by section + rules -> ``SaftReport``
    sample.py    deterministic fake data of N balanced GL lines
    cli.py       the ``saft`` click group (``generate``, ``validate``, ``sample``)

Generating and validating are pure functions of files (CONVENTIONS §11); the task module
(``workers_core.tasks.saft``) fetches and stores artifacts around them.
"""

from workers_core.saft.errors import SaftInputError
from workers_core.saft.model import DeclarationKind, FileHeader
from workers_core.saft.rules import Violation
from workers_core.saft.validate import SaftReport, validate_file
from workers_core.saft.writer import GenerateSummary, build_tree, generate, write_stream

__all__ = [
    "DeclarationKind",
    "FileHeader",
    "GenerateSummary",
    "SaftInputError",
    "SaftReport",
    "Violation",
    "build_tree",
    "generate",
    "validate_file",
    "write_stream",
]
