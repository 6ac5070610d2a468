"""SAF-T D406 jobs (queue ``anaf.saft``): generate a D406 XML from JSON Lines, CSV or Parquet
artifacts, and validate a D406 XML artifact.

Artifacts are copied to a temp directory and back in chunks (``get_to_file``/``put_file``),
and generation and validation stream from there (``workers_core.saft``): no input or output
is ever whole in memory. Filing is not done here: a D406 is filed as a signed PDF with the
XML attached, through ANAF's portal (see README, "saft").
"""

from __future__ import annotations

import asyncio
import tempfile
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from workers_core.artifacts import ArtifactId
from workers_core.efactura.schemas import schemas_root
from workers_core.errors import NonRetryable
from workers_core.jobs.retry import RetryPolicy
from workers_core.saft.errors import MalformedXml, SaftInputError, UnsafeXml
from workers_core.saft.inputs import InputFormat, input_path
from workers_core.saft.model import FileHeader, InputKind
from workers_core.saft.rules import Violation
from workers_core.saft.tabular import PARQUET_MAGIC
from workers_core.saft.validate import SaftReport, validate_file
from workers_core.saft.writer import generate
from workers_core.tasks.base import JobContext, Resources, Task

QUEUE = "anaf.saft"
SHOWN_VIOLATIONS = 50  # in a job result; the full report is an artifact


class GeneratePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    header: FileHeader = Field(description="Company, period, declaration type (L/T/A/C/NL/NT).")
    inputs: dict[InputKind, ArtifactId] = Field(
        description="An artifact per input kind (accounts, transactions, ...): JSON Lines, "
        "CSV (content type text/csv) or Parquet (by its magic bytes); a kind left out is "
        "empty."
    )
    fail_on_violations: bool = Field(
        default=False, description="Fail the job when the generated file breaks a rule."
    )


class ReportSummary(BaseModel):
    ok: bool
    rules: list[str] = Field(description="Distinct rule ids broken, in order of appearance.")
    violations: int
    shown: list[Violation] = Field(description=f"The first {SHOWN_VIOLATIONS} violations.")
    checks_skipped: list[str]
    report_artifact_id: str = Field(description="The full report (JSON).")


class GenerateResult(BaseModel):
    xml_artifact_id: str
    size: int
    counts: dict[str, int]
    gl_lines: int
    total_debit: Decimal
    total_credit: Decimal
    report: ReportSummary


class ValidatePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    xml_artifact_id: ArtifactId


class ValidateResult(BaseModel):
    declaration_kind: str | None
    test_filing: bool
    transactions: int
    gl_lines: int
    report: ReportSummary


async def _summary(report: SaftReport, ctx: JobContext) -> ReportSummary:
    meta = await ctx.artifacts.put(
        report.model_dump_json(indent=2).encode(), "application/json", filename="report.json"
    )
    return ReportSummary(
        ok=report.ok,
        rules=report.rules(),
        violations=len(report.violations) + report.dropped,
        shown=report.violations[:SHOWN_VIOLATIONS],
        checks_skipped=report.checks_skipped,
        report_artifact_id=meta.id,
    )


def input_format(content_type: str, path: Path) -> InputFormat:
    """Parquet by its magic bytes, CSV by its content type, JSON Lines otherwise."""
    with path.open("rb") as handle:
        if handle.read(4) == PARQUET_MAGIC:
            return "parquet"
    media = content_type.split(";")[0].strip().lower()
    return "csv" if media in ("text/csv", "application/csv") else "jsonl"


def _checked(path: Path, root: Path) -> SaftReport:
    try:
        return validate_file(path, root)
    except (UnsafeXml, MalformedXml) as exc:
        raise NonRetryable(exc.message) from exc


class GenerateD406(Task[GeneratePayload, GenerateResult]):
    """JSON Lines artifacts -> a D406 XML artifact (streamed), validated, with a report."""

    name = "saft.generate"
    queue = QUEUE
    Payload = GeneratePayload
    Result = GenerateResult
    resources = Resources(num_cpus=1)
    concurrency = 1  # CPU-bound: one file at a time per replica
    time_limit_s = 3600.0
    retry = RetryPolicy(max_attempts=2)
    non_retryable = (SaftInputError,)

    async def run(self, payload: GeneratePayload, ctx: JobContext) -> GenerateResult:
        root = schemas_root(self.settings)  # a missing XSD fails before any work
        with tempfile.TemporaryDirectory(prefix="saft-") as tmp:
            data_dir = Path(tmp, "data")
            await asyncio.to_thread(data_dir.mkdir)
            for kind, artifact_id in payload.inputs.items():
                download = Path(tmp, f"{kind}.download")
                meta = await ctx.artifacts.get_to_file(artifact_id, download)
                fmt = await asyncio.to_thread(input_format, meta.content_type, download)
                await asyncio.to_thread(download.rename, input_path(data_dir, kind, fmt))
            target = Path(tmp, "d406.xml")
            summary = await asyncio.to_thread(generate, data_dir, target, payload.header)
            report = await asyncio.to_thread(_checked, target, root)
            if payload.fail_on_violations and not report.ok:
                shown = "; ".join(f"{v.rule} at {v.location}" for v in report.violations[:10])
                raise NonRetryable(f"the D406 breaks {', '.join(report.rules())}: {shown}")
            h = payload.header
            filename = (f"D406{h.kind.value}_{h.company.registration_number}_"
                        f"{h.period.start:%Y%m}.xml")
            meta = await ctx.artifacts.put_file(target, "application/xml", filename=filename)
        return GenerateResult(
            xml_artifact_id=meta.id,
            size=meta.size,
            counts=summary.counts,
            gl_lines=summary.gl_lines,
            total_debit=summary.total_debit,
            total_credit=summary.total_credit,
            report=await _summary(report, ctx),
        )


class ValidateD406(Task[ValidatePayload, ValidateResult]):
    """A D406 XML artifact -> the XSD and business-rule report (streamed)."""

    name = "saft.validate"
    queue = QUEUE
    Payload = ValidatePayload
    Result = ValidateResult
    resources = Resources(num_cpus=1)
    concurrency = 1
    time_limit_s = 1800.0
    retry = RetryPolicy(max_attempts=2)

    async def run(self, payload: ValidatePayload, ctx: JobContext) -> ValidateResult:
        root = schemas_root(self.settings)
        with tempfile.TemporaryDirectory(prefix="saft-") as tmp:
            target = Path(tmp, "d406.xml")
            await ctx.artifacts.get_to_file(payload.xml_artifact_id, target)
            report = await asyncio.to_thread(_checked, target, root)
        return ValidateResult(
            declaration_kind=report.declaration_kind,
            test_filing=report.test_filing,
            transactions=report.transactions,
            gl_lines=report.gl_lines,
            report=await _summary(report, ctx),
        )


TASKS = [GenerateD406, ValidateD406]
