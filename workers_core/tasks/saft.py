"""SAF-T D406 jobs (queue ``anaf.saft``): generate a D406 XML from JSON Lines artifacts, and
validate a D406 XML artifact.

Both write to a temp directory and stream from there (``workers_core.saft``); what is held
whole is each artifact's bytes, because the artifact store's API takes and returns bytes
(``WORKERS_ARTIFACT_MAX_BYTES`` caps them). Filing is not done here: a D406 is filed as a
signed PDF with the XML attached, through ANAF's portal (see README, "saft").
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
from workers_core.saft.inputs import input_path
from workers_core.saft.model import FileHeader, InputKind
from workers_core.saft.rules import Violation
from workers_core.saft.validate import SaftReport, validate_file
from workers_core.saft.writer import generate
from workers_core.tasks.base import JobContext, Resources, Task

QUEUE = "anaf.saft"
SHOWN_VIOLATIONS = 50  # in a job result; the full report is an artifact


class GeneratePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    header: FileHeader = Field(description="Company, period, declaration type (L/T/A/C/NL/NT).")
    inputs: dict[InputKind, ArtifactId] = Field(
        description="JSON Lines artifact per input kind (accounts, transactions, ...); "
        "a kind left out is empty."
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
                _, data = await ctx.artifacts.get(artifact_id)
                await asyncio.to_thread(input_path(data_dir, kind).write_bytes, data)
                del data
            target = Path(tmp, "d406.xml")
            summary = await asyncio.to_thread(generate, data_dir, target, payload.header)
            report = await asyncio.to_thread(_checked, target, root)
            if payload.fail_on_violations and not report.ok:
                shown = "; ".join(f"{v.rule} at {v.location}" for v in report.violations[:10])
                raise NonRetryable(f"the D406 breaks {', '.join(report.rules())}: {shown}")
            xml = await asyncio.to_thread(target.read_bytes)
        h = payload.header
        filename = f"D406{h.kind.value}_{h.company.registration_number}_{h.period.start:%Y%m}.xml"
        meta = await ctx.artifacts.put(xml, "application/xml", filename=filename)
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
            _, data = await ctx.artifacts.get(payload.xml_artifact_id)
            await asyncio.to_thread(target.write_bytes, data)
            del data
            report = await asyncio.to_thread(_checked, target, root)
        return ValidateResult(
            declaration_kind=report.declaration_kind,
            test_filing=report.test_filing,
            transactions=report.transactions,
            gl_lines=report.gl_lines,
            report=await _summary(report, ctx),
        )


TASKS = [GenerateD406, ValidateD406]
