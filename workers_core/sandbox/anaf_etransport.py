"""The e-Transport half of the ANAF sandbox, over real HTTP (notes/anaf.md §3.1).

- ``POST /{env}/ETRANSPORT/ws/v1/upload/{standard}/{cif}/{versiune}``: ``standard`` must
  be ETRANSP, ``versiune`` 1 or 2, the body XML of at most 5 MB; answers JSON with
  ``index_incarcare`` and a ``UIT`` at once (a new one for a notification, the referenced
  one for a correction, deletion, confirmation or vehicle change). NOT idempotent: every
  upload is registered; ``uploads_of`` counts them per (cif, refDeclarant).
- ``GET stareMesaj/{index}``: ``in prelucrare`` for the first ``processing_polls`` queries,
  then ``ok`` or ``nok`` with ``Errors`` (the real XSD + Schematron when ``check`` is set).
- ``GET lista/{zile}/{cif}``: processed declarations (``processing_s`` after upload, or
  once a status query saw them) with ``tip``, ``stare`` OK/ERR, ``uit``, ``ref_decl``,
  ``id_incarcare``; "none" is ``ExecutionStatus: 1`` + "Nu exista mesaje in ultimele N zile".

Texts marked "sandbox" are ours; the others follow ANAF's published examples.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from lxml import etree  # type: ignore[import-untyped]

from workers_core.etransport.codes import UIT_ALPHABET, uit_check_digits
from workers_core.etransport.validate import validate as validate_declaration
from workers_core.sandbox.spv import DocumentCheck, SpvState, now_ro, rules_check, stamp

NS = "mfp:anaf:dgti:eTransport:declaratie:v2"
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
_TIP = {"notificare": "NOT", "stergere": "DEL", "confirmare": "CON", "modifVehicul": "MVH"}

Verdict = Literal["ok", "nok"]


def schema_check(schemas_root: Path) -> DocumentCheck:
    """ANAF's verdict with the project's validator (XSD v2 + Schematron 2.0.2)."""
    return rules_check(validate_declaration, schemas_root)


def new_uit() -> str:
    body = "".join(secrets.choice(UIT_ALPHABET) for _ in range(14))
    return body + uit_check_digits(body)


@dataclass
class Upload:
    index: int
    cif: int
    uit: str
    ref: str | None
    kind: str
    corrects: bool
    operation: str | None
    xml: bytes
    verdict: Verdict
    errors: list[str]
    uploaded_at: dt.datetime
    polls: int = 0
    processed_at: dt.datetime | None = None


@dataclass
class EtransportState(SpvState):
    """What the e-Transport routes know; the tests read and steer it."""

    uploads: dict[int, Upload] = field(default_factory=dict)
    counts: Counter[tuple[int, str | None]] = field(default_factory=Counter)
    status_calls: Counter[int] = field(default_factory=Counter)
    next_index: int = 7_000_000

    def uploads_of(self, cif: int, ref: str | None) -> int:
        with self.lock:
            return self.counts[(cif, ref)]


def _answer(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"dateResponse": stamp(now_ro()), "trace_id": str(uuid.uuid4()), **body})


def _errors(*messages: str) -> JSONResponse:
    return _answer({"ExecutionStatus": 1, "Errors": [{"errorMessage": m} for m in messages]})


def _facts(xml: bytes) -> tuple[str | None, str, str | None, str | None, str | None]:
    """(refDeclarant, kind, referenced UIT, codTipOperatiune, why unreadable)."""
    try:
        root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        return None, "", None, None, f"Fisierul transmis nu este valid. {exc}"
    child = next((c for c in root if isinstance(c.tag, str)), None)
    if child is None:
        return root.get("refDeclarant"), "", None, None, "sandbox: declaratie fara continut"
    kind = etree.QName(child).localname
    uit = child.get("uit")
    if kind == "notificare":
        corectie = child.find(f"{{{NS}}}corectie")
        uit = corectie.get("uit") if corectie is not None else None
    return root.get("refDeclarant"), kind, uit, child.get("codTipOperatiune"), None


def add_etransport_routes(
    app: FastAPI, state: EtransportState, bearer_ok: Callable[[Request], bool]
) -> None:
    """Mount the ETRANSPORT routes under ``/test`` and ``/prod``."""
    for mount in (_upload_route, _status_route, _list_route):
        mount(app, state, bearer_ok)


def _unauthorised() -> JSONResponse:
    return JSONResponse({"status": 401, "error": "Unauthorized"}, status_code=401)


def _upload_route(
    app: FastAPI, state: EtransportState, bearer_ok: Callable[[Request], bool]
) -> None:
    @app.post("/{env}/ETRANSPORT/ws/v1/upload/{standard}/{cif}/{version}")
    async def upload(request: Request, env: str, standard: str, cif: str, version: str) -> Response:
        if env not in ("test", "prod"):
            return JSONResponse({"status": 404, "error": "Not Found"}, status_code=404)
        if not bearer_ok(request):
            return _unauthorised()
        if standard != "ETRANSP":
            return _errors("Valoarea acceptata pentru parametrul standard este ETRANSP")
        if version not in ("1", "2"):
            return _errors(f"sandbox: versiune {version} nu este 1 sau 2")
        if not cif.isdigit() or len(cif) > 13:
            return _errors(f"CIF introdus= {cif} nu este un numar")
        if state.authorised_cifs is not None and int(cif) not in state.authorised_cifs:
            return _errors(f"Nu aveti drept in SPV pentru CIF={cif}")
        body = await request.body()
        if len(body) > MAX_UPLOAD_BYTES:
            return _errors("Marime fisier transmis mai mare de 5 MB.")
        ref, kind, referenced, operation, unreadable = _facts(body)
        if unreadable:
            return _errors(unreadable)
        errors = await state.judge(body)
        with state.lock:
            index = state.next_index
            state.next_index += 1
            record = Upload(
                index=index,
                cif=int(cif),
                uit=referenced or new_uit(),
                ref=ref,
                kind=kind,
                corrects=kind == "notificare" and referenced is not None,
                operation=operation,
                xml=body,
                verdict="nok" if errors else "ok",
                errors=errors,
                uploaded_at=now_ro(),
            )
            state.uploads[index] = record
            state.counts[(record.cif, ref)] += 1
        return _answer(
            {
                "ExecutionStatus": 0,
                "index_incarcare": index,
                "UIT": record.uit,
                "ref_declarant": ref or "",
                "atentie": "Verificati starea XML-ului transmis. Codul UIT este valabil din "
                "momentul in care apare ca valid dupa apelul de stare",
            }
        )


def _status_route(
    app: FastAPI, state: EtransportState, bearer_ok: Callable[[Request], bool]
) -> None:
    @app.get("/{env}/ETRANSPORT/ws/v1/stareMesaj/{raw}")
    async def status(request: Request, env: str, raw: str) -> Response:
        if not bearer_ok(request):
            return _unauthorised()
        if not raw.isdigit():
            return _errors(f"Id_incarcare introdus= {raw} nu este un numar intreg")
        with state.lock:
            upload = state.uploads.get(int(raw))
            if upload is None:
                return _errors(f"Nu exista mesaj cu id_incarcare= {raw}")
            state.status_calls[upload.index] += 1
            upload.polls += 1
            if upload.polls <= state.processing_polls:
                return _answer({"stare": "in prelucrare", "ExecutionStatus": 0})
            if upload.processed_at is None:
                upload.processed_at = now_ro()
            if upload.verdict == "ok":
                return _answer({"stare": "ok", "ExecutionStatus": 0})
            return _answer(
                {
                    "stare": "nok",
                    "ExecutionStatus": 0,
                    "Errors": [{"errorMessage": text} for text in upload.errors],
                }
            )


def _list_route(app: FastAPI, state: EtransportState, bearer_ok: Callable[[Request], bool]) -> None:
    @app.get("/{env}/ETRANSPORT/ws/v1/lista/{days}/{cif}")
    async def listing(request: Request, env: str, days: str, cif: str) -> Response:
        if not bearer_ok(request):
            return _unauthorised()
        if not days.isdigit() or not 1 <= int(days) <= 60:
            return _errors(
                f"Numarul de zile introdus= {days} nu este un numar intreg intre 1 si 60"
            )
        if not cif.isdigit():
            return _errors(f"CIF introdus= {cif} nu este un numar")
        since = now_ro() - dt.timedelta(days=int(days))
        rows = []
        with state.lock:
            for upload in state.uploads.values():
                done = state.processed_at(upload)
                if upload.cif != int(cif) or done is None or done < since:
                    continue
                rows.append(_row(upload, done))
        if not rows:
            return _errors(f"Nu exista mesaje in ultimele {days} zile")
        return _answer({"mesaje": rows, "serial": "sandbox", "cui": cif, "titlu": "Lista"})


def _row(upload: Upload, done: dt.datetime) -> dict[str, Any]:
    tip = "COR" if upload.corrects else _TIP.get(upload.kind, "NOT")
    return {
        "tip": tip,
        "stare": "OK" if upload.verdict == "ok" else "ERR",
        "uit": upload.uit,
        "cod_decl": str(upload.cif),
        "ref_decl": upload.ref or "",
        "sursa": "A",
        "id_incarcare": str(upload.index),
        "data_creare": done.strftime("%Y-%m-%dT%H:%M:%S"),
        "tip_op": upload.operation or "",
        "mesaje": [{"tip": "ERR", "mesaj": text} for text in upload.errors],
    }
