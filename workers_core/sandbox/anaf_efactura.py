"""The e-Factura (FCTEL) half of the ANAF sandbox, over real HTTP (notes/anaf.md §2.3-2.7).

- ``POST /{env}/FCTEL/rest/upload`` (and ``uploadb2c``): ``standard``/``cif``/``extern``/
  ``autofactura``/``executare`` checked as ANAF does; answers the ``respUploadFisier`` XML.
  The document is validated with the project's own XSD + CIUS-RO Schematron (when the
  schemas are available), so ``nok`` comes from the real rules. Uploads are NOT idempotent,
  as at ANAF: every upload gets a new index; ``uploads_of`` counts them per invoice.
- ``GET stareMesaj``: ``in prelucrare`` for the first ``processing_polls`` queries, then ``ok``
  or ``nok`` with ``id_descarcare``; 100 queries per message per day, enforced.
- ``GET listaMesajeFactura`` / ``listaMesajePaginatieFactura``: the JSON envelopes, with
  messages visible ``list_delay_s`` after processing; "no messages" is an ``eroare``.
- ``GET descarcare``: a ZIP with ``<index>.xml`` (the invoice, or ANAF's error file) and
  ``semnatura_<index>.xml``, a detached XMLDSig made with a key generated at start
  (``signing_cert_pem`` is what a client pins); 10 downloads per message per day.
- ``POST /prod/FCTEL/rest/validare/{FACT1|FCN}`` and ``transformare/{FACT1|FCN}[/DA]``
  (prod only, no auth): the validation verdict, and a small PDF of the invoice.

Texts marked "sandbox" are ours; the others follow ANAF's published examples.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from lxml import etree  # type: ignore[import-untyped]
from signxml import XMLSigner, methods  # type: ignore[attr-defined]

from workers_core.efactura.validate import validate as validate_invoice
from workers_core.integrations.anaf.http import ROMANIA
from workers_core.sandbox.spv import DocumentCheck, SpvState, now_ro, rules_check, stamp

UPLOAD_NS = "mfp:anaf:dgti:spv:respUploadFisier:v1"
STATUS_NS = "mfp:anaf:dgti:efactura:stareMesajFactura:v1"
ERRORS_NS = "mfp:anaf:dgti:efactura:mesajEroriFactuta:v1"  # sic: ANAF's spelling
UBL_NS = {
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
}
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_TRANSFORM_BYTES = 5 * 1024 * 1024
STATUS_DAILY_LIMIT = 100
DOWNLOAD_DAILY_LIMIT = 10
PAGE_SIZE = 500

Verdict = Literal["ok", "nok"]


class SandboxSigner:
    """Signs downloads like ANAF's ``semnatura_*.xml``: a detached XMLDSig with the certificate.

    The key and the self-signed certificate are made at start: nothing secret is stored.
    """

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "RO"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sandbox MFP"),
                x509.NameAttribute(NameOID.COMMON_NAME, "sandbox e-Factura signer"),
            ]
        )
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self.certificate.public_bytes(serialization.Encoding.PEM)
        self._key_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def sign(self, name: str, document: bytes) -> bytes:
        """The signature file for ``document``, stored in the ZIP as ``name``."""
        signer = XMLSigner(method=methods.detached, digest_algorithm="sha256")
        root = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
        signature = signer.sign(
            root, key=self._key_pem, cert=self.cert_pem.decode(), reference_uri=name
        )
        return bytes(etree.tostring(signature, xml_declaration=True, encoding="UTF-8"))


@dataclass
class SpvMessage:
    index: int
    download_id: int
    cif: int
    standard: str
    xml: bytes
    invoice_id: str | None
    buyer_cif: str | None
    verdict: Verdict
    errors: list[str]
    uploaded_at: dt.datetime
    polls: int = 0
    processed_at: dt.datetime | None = None


@dataclass
class EfacturaState(SpvState):
    """What the e-Factura routes know; the tests read and steer it."""

    list_delay_s: float = 0.0
    signer: SandboxSigner = field(default_factory=SandboxSigner)
    messages: dict[int, SpvMessage] = field(default_factory=dict)
    downloads: dict[int, SpvMessage] = field(default_factory=dict)
    uploads: Counter[tuple[int, str | None]] = field(default_factory=Counter)
    status_calls: Counter[tuple[int, dt.date]] = field(default_factory=Counter)
    download_calls: Counter[tuple[int, dt.date]] = field(default_factory=Counter)
    transforms: int = 0
    next_index: int = 5_000_000_000

    def uploads_of(self, cif: int, invoice_id: str) -> int:
        with self.lock:
            return self.uploads[(cif, invoice_id)]

    def listed(
        self, cif: int, start: dt.datetime, end: dt.datetime, kind: str | None
    ) -> list[dict[str, Any]]:
        visible_before = now_ro() - dt.timedelta(seconds=self.list_delay_s)
        rows = []
        with self.lock:
            for message in self.messages.values():
                done = self.processed_at(message)
                if done is None or done > visible_before or not start <= done <= end:
                    continue
                for row in _rows_for(message, cif, done):
                    if kind is None or row["tip"] == kind:
                        rows.append(row)
        return rows


def _unauthorised() -> JSONResponse:
    return JSONResponse({"status": 401, "error": "Unauthorized"}, status_code=401)


def _xml(body: bytes) -> Response:
    return Response(body, media_type="application/xml")


def _header(ns: str, attrs: dict[str, str], errors: Sequence[str] = ()) -> bytes:
    root = etree.Element(f"{{{ns}}}header", nsmap={None: ns})
    for key, value in attrs.items():
        root.set(key, value)
    for message in errors:
        etree.SubElement(root, f"{{{ns}}}Errors").set("errorMessage", message)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True))


def _upload_error(message: str) -> Response:
    return _xml(
        _header(UPLOAD_NS, {"dateResponse": stamp(now_ro()), "ExecutionStatus": "1"}, [message])
    )


def _eroare(message: str, title: str) -> JSONResponse:
    return JSONResponse({"eroare": message, "titlu": title})


def schema_check(schemas_root: Path) -> DocumentCheck:
    """ANAF's verdict with the project's validator (UBL XSD + CIUS-RO Schematron)."""
    return rules_check(validate_invoice, schemas_root)


def _invoice_facts(xml: bytes) -> tuple[str | None, str | None]:
    """(invoice number, buyer CIF digits) for the message list; None when unreadable."""
    try:
        root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return None, None
    number = root.findtext("cbc:ID", namespaces=UBL_NS)
    buyer = root.xpath(
        "cac:AccountingCustomerParty/cac:Party/cac:PartyTaxScheme/cbc:CompanyID/text()"
        " | cac:AccountingCustomerParty/cac:Party/cac:PartyLegalEntity/cbc:CompanyID/text()",
        namespaces=UBL_NS,
    )
    digits = "".join(ch for ch in (buyer[0] if buyer else "") if ch.isdigit())
    return number, digits or None


def _error_file(message: SpvMessage) -> bytes:
    root = etree.Element(f"{{{ERRORS_NS}}}header", nsmap={None: ERRORS_NS})
    root.set("Index_incarcare", str(message.index))
    root.set("Cif_emitent", str(message.cif))
    for text in message.errors:
        etree.SubElement(root, f"{{{ERRORS_NS}}}Error").set("errorMessage", text)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def build_zip(message: SpvMessage, signer: SandboxSigner) -> bytes:
    document = message.xml if message.verdict == "ok" else _error_file(message)
    name = f"{message.index}.xml"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, document)
        archive.writestr(f"semnatura_{message.index}.xml", signer.sign(name, document))
    return buffer.getvalue()


def tiny_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with ``lines`` of text (Helvetica): what transformare returns, in small."""
    text = "\n".join(
        f"BT /F1 11 Tf 50 {780 - 16 * i} Td ({_pdf_escape(line)}) Tj ET"
        for i, line in enumerate(lines)
    ).encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def add_efactura_routes(
    app: FastAPI, state: EfacturaState, bearer_ok: Callable[[Request], bool]
) -> None:
    """Mount the FCTEL routes under ``/test`` and ``/prod``; ``bearer_ok`` checks the token."""
    for mount in (
        _upload_route,
        _status_route,
        _list_routes,
        _paged_list_route,
        _download_route,
        _public_routes,
    ):
        mount(app, state, bearer_ok)


def _upload_route(app: FastAPI, state: EfacturaState, bearer_ok: Callable[[Request], bool]) -> None:
    @app.post("/{env}/FCTEL/rest/{endpoint}")
    async def upload(request: Request, env: str, endpoint: str) -> Response:
        if env not in ("test", "prod") or endpoint not in ("upload", "uploadb2c"):
            return JSONResponse({"status": 404, "error": "Not Found"}, status_code=404)
        if not bearer_ok(request):
            return _unauthorised()
        query = request.query_params
        standard, cif_text = query.get("standard", ""), query.get("cif", "")
        if standard not in ("UBL", "CN", "CII", "RASP"):
            return _upload_error(
                f"Valoarea parametrului standard= {standard} nu este valida; "
                "valorile acceptate sunt UBL, CN, CII sau RASP"
            )
        if not cif_text.isdigit():
            return _upload_error(f"CIF introdus= {cif_text} nu este un numar")
        for flag in ("extern", "autofactura", "executare"):
            if flag in query and query[flag] != "DA":
                return _upload_error(f"Valoarea parametrului {flag} poate fi doar DA")
        cif = int(cif_text)
        if state.authorised_cifs is not None and cif not in state.authorised_cifs:
            return _upload_error(f"Nu aveti drept in SPV pentru CIF={cif}")
        body = await request.body()
        if len(body) > MAX_UPLOAD_BYTES:
            return _upload_error("Marime fisier transmis mai mare de 10 MB.")
        try:
            etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError as exc:
            return _upload_error(
                f"Fisierul transmis nu este valid. org.xml.sax.SAXParseException; {exc}"
            )
        errors = await state.judge(body)
        invoice_id, buyer = _invoice_facts(body)
        with state.lock:
            index = state.next_index
            state.next_index += 1
            message = SpvMessage(
                index=index,
                download_id=index - 2_000_000_000,
                cif=cif,
                standard=standard,
                xml=body,
                invoice_id=invoice_id,
                buyer_cif=buyer,
                verdict="nok" if errors else "ok",
                errors=errors,
                uploaded_at=now_ro(),
            )
            state.messages[index] = message
            state.downloads[message.download_id] = message
            state.uploads[(cif, invoice_id)] += 1
        return _xml(
            _header(
                UPLOAD_NS,
                {
                    "dateResponse": stamp(message.uploaded_at),
                    "ExecutionStatus": "0",
                    "index_incarcare": str(index),
                },
            )
        )


def _status_route(app: FastAPI, state: EfacturaState, bearer_ok: Callable[[Request], bool]) -> None:
    @app.get("/{env}/FCTEL/rest/stareMesaj")
    async def status(request: Request, env: str) -> Response:
        if not bearer_ok(request):
            return _unauthorised()
        raw = request.query_params.get("id_incarcare", "")
        if not raw.isdigit():
            return _xml(
                _header(STATUS_NS, {}, [f"Id_incarcare introdus= {raw} nu este un numar intreg"])
            )
        index, today = int(raw), now_ro().date()
        with state.lock:
            message = state.messages.get(index)
            if message is None:
                return _xml(_header(STATUS_NS, {}, [f"Nu exista factura cu id_incarcare= {raw}"]))
            state.status_calls[(index, today)] += 1
            if state.status_calls[(index, today)] > STATUS_DAILY_LIMIT:
                return _xml(
                    _header(
                        STATUS_NS,
                        {},
                        [
                            f"S-au facut deja {STATUS_DAILY_LIMIT} interogari de stare pentru "
                            f"mesajul cu id_incarcare={raw} in cursul zilei"
                        ],
                    )
                )
            message.polls += 1
            if message.polls <= state.processing_polls:
                return _xml(_header(STATUS_NS, {"stare": "in prelucrare"}))
            if message.processed_at is None:
                message.processed_at = now_ro()
            return _xml(
                _header(
                    STATUS_NS,
                    {"stare": message.verdict, "id_descarcare": str(message.download_id)},
                )
            )


def _list_routes(app: FastAPI, state: EfacturaState, bearer_ok: Callable[[Request], bool]) -> None:
    @app.get("/{env}/FCTEL/rest/listaMesajeFactura")
    async def messages(request: Request, env: str) -> Response:
        if not bearer_ok(request):
            return _unauthorised()
        query = request.query_params
        days, cif_text = query.get("zile", ""), query.get("cif", "")
        if not days.isdigit() or not 1 <= int(days) <= 60:
            return _eroare(
                f"Numarul de zile trebuie sa fie intre 1 si 60 (zile={days})", "Lista Mesaje"
            )
        if not cif_text.isdigit():
            return _eroare(f"CIF introdus= {cif_text} nu este un numar", "Lista Mesaje")
        end = now_ro()
        rows = state.listed(
            int(cif_text),
            end - dt.timedelta(days=int(days)),
            end,
            _FILTERS.get(query.get("filtru", "")),
        )
        if not rows:
            return _eroare(f"Nu exista mesaje in ultimele {days} zile", "Lista Mesaje")
        if len(rows) > PAGE_SIZE:
            return _eroare(
                "Lista de mesaje este mai mare decat numarul de 500 elemente permise in "
                "pagina. Folositi endpoint-ul cu paginatie.",
                "Lista Mesaje",
            )
        return JSONResponse(
            {
                "mesaje": rows,
                "serial": "sandbox",
                "cui": cif_text,
                "titlu": f"Lista Mesaje disponibile din ultimele {days} zile",
            }
        )


def _paged_list_route(
    app: FastAPI, state: EfacturaState, bearer_ok: Callable[[Request], bool]
) -> None:
    @app.get("/{env}/FCTEL/rest/listaMesajePaginatieFactura")
    async def messages_paged(request: Request, env: str) -> Response:
        if not bearer_ok(request):
            return _unauthorised()
        query = request.query_params
        try:
            start_ms, end_ms = int(query["startTime"]), int(query["endTime"])
            page, cif = int(query.get("pagina", "1")), int(query["cif"])
        except (KeyError, ValueError):
            return _eroare("sandbox: startTime, endTime, cif si pagina sunt numere", "Lista Mesaje")
        now = now_ro()
        start = dt.datetime.fromtimestamp(start_ms / 1000, ROMANIA)
        end = dt.datetime.fromtimestamp(end_ms / 1000, ROMANIA)
        if start < now - dt.timedelta(days=60):
            return _eroare("startTime nu poate fi mai vechi de 60 de zile", "Lista Mesaje")
        if end > now + dt.timedelta(seconds=1):
            return _eroare("endTime nu poate fi in viitor", "Lista Mesaje")
        rows = state.listed(cif, start, end, _FILTERS.get(query.get("filtru", "")))
        if not rows:
            return _eroare("Nu exista mesaje in intervalul selectat", "Lista Mesaje")
        pages = (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE
        if not 1 <= page <= pages:
            return _eroare(
                f"Pagina solicitata {page} nu exista; total pagini {pages}", "Lista Mesaje"
            )
        chunk = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        return JSONResponse(
            {
                "mesaje": chunk,
                "numar_inregistrari_in_pagina": len(chunk),
                "numar_total_inregistrari_per_pagina": PAGE_SIZE,
                "numar_total_inregistrari": len(rows),
                "numar_total_pagini": pages,
                "index_pagina_curenta": page,
                "serial": "sandbox",
                "cui": str(cif),
                "titlu": "Lista Mesaje",
            }
        )


def _download_route(
    app: FastAPI, state: EfacturaState, bearer_ok: Callable[[Request], bool]
) -> None:
    @app.get("/{env}/FCTEL/rest/descarcare")
    async def download(request: Request, env: str) -> Response:
        if not bearer_ok(request):
            return _unauthorised()
        raw = request.query_params.get("id", "")
        title = "Descarcare mesaj"
        if not raw.isdigit():
            return _eroare(f"Id descarcare introdus= {raw} nu este un numar intreg", title)
        today = now_ro().date()
        with state.lock:
            message = state.downloads.get(int(raw))
            if message is None or state.processed_at(message) is None:
                return _eroare(f"Pentru id={raw} nu exista inregistrata nici o factura", title)
            state.download_calls[(int(raw), today)] += 1
            if state.download_calls[(int(raw), today)] > DOWNLOAD_DAILY_LIMIT:
                return _eroare(
                    f"S-au facut deja {DOWNLOAD_DAILY_LIMIT} descarcari de mesaj in cursul zilei",
                    title,
                )
        return Response(build_zip(message, state.signer), media_type="application/zip")


def _public_routes(
    app: FastAPI, state: EfacturaState, bearer_ok: Callable[[Request], bool]
) -> None:
    @app.post("/prod/FCTEL/rest/validare/{kind}")
    async def validate(request: Request, kind: str) -> Response:
        if kind not in ("FACT1", "FCN"):
            return JSONResponse({"status": 404, "error": "Not Found"}, status_code=404)
        body = await request.body()
        if len(body) > MAX_TRANSFORM_BYTES:
            return JSONResponse(
                {"stare": "nok", "Messages": [{"message": "Fisier mai mare de 5 MB"}]}
            )
        errors = await state.judge(body)
        return JSONResponse(
            {
                "stare": "nok" if errors else "ok",
                "Messages": [{"message": text} for text in errors],
                "trace_id": str(uuid.uuid4()),
            }
        )

    @app.post("/prod/FCTEL/rest/transformare/{kind}")
    @app.post("/prod/FCTEL/rest/transformare/{kind}/{novld}")
    async def transform(request: Request, kind: str, novld: str | None = None) -> Response:
        if kind not in ("FACT1", "FCN") or novld not in (None, "DA"):
            return JSONResponse({"status": 404, "error": "Not Found"}, status_code=404)
        body = await request.body()
        if len(body) > MAX_TRANSFORM_BYTES:
            return JSONResponse(
                {"stare": "nok", "Messages": [{"message": "Fisier mai mare de 5 MB"}]}
            )
        errors = [] if novld == "DA" else await state.judge(body)
        if errors:
            return JSONResponse(
                {
                    "stare": "nok",
                    "Messages": [{"message": text} for text in errors],
                    "trace_id": str(uuid.uuid4()),
                }
            )
        number, buyer = _invoice_facts(body)
        with state.lock:
            state.transforms += 1
        pdf = tiny_pdf(
            [f"Factura {number or '?'}", f"Cumparator CIF {buyer or '?'}", "sandbox transformare"]
        )
        return Response(pdf, media_type="application/pdf")

    @app.get("/_sandbox/efactura/signing-cert")
    async def signing_cert() -> Response:
        return Response(state.signer.cert_pem, media_type="application/x-pem-file")


_FILTERS = {
    "E": "ERORI FACTURA",
    "T": "FACTURA TRIMISA",
    "P": "FACTURA PRIMITA",
    "R": "MESAJ CUMPARATOR",
}


def _rows_for(message: SpvMessage, cif: int, done: dt.datetime) -> list[dict[str, Any]]:
    """The list entries ``cif`` sees for one message: the sender's, and the buyer's if ok."""
    base = {
        "data_creare": stamp(done),
        "id_solicitare": str(message.index),
        "id": str(message.download_id),
    }
    rows = []
    if message.cif == cif:
        if message.verdict == "ok":
            rows.append(
                {
                    **base,
                    "cif": str(cif),
                    "tip": "FACTURA TRIMISA",
                    "detalii": f"Factura cu id_incarcare={message.index} emisa de "
                    f"cif_emitent={message.cif} pentru cif_beneficiar={message.buyer_cif or ''}",
                }
            )
        else:
            rows.append(
                {
                    **base,
                    "cif": str(cif),
                    "tip": "ERORI FACTURA",
                    "detalii": "Erori de validare identificate la factura primita cu "
                    f"id_incarcare={message.index}",
                }
            )
    if message.verdict == "ok" and message.buyer_cif == str(cif) and message.cif != cif:
        rows.append(
            {
                **base,
                "cif": str(cif),
                "tip": "FACTURA PRIMITA",
                "detalii": f"Factura cu id_incarcare={message.index} emisa de "
                f"cif_emitent={message.cif} pentru cif_beneficiar={cif}",
            }
        )
    return rows
