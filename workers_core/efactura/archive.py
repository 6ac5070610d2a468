"""ANAF's download ZIP: the document (invoice or error list) and its detached signature.

``semnatura_<index>.xml`` is an XMLDSig ``Signature`` whose one ``Reference`` names the
document in the ZIP; ANAF's digest is the SHA-256 of the file's bytes (no transforms). signxml
verifies it once told how to fetch that external reference (``uri_resolver``). Trust: the
certificates in ``anaf_signature_certs`` are pinned (the official validator and independent
checkers embed ANAF's certificates the same way); without them, the certificate carried in
the signature is used, which proves the files were not altered, not who signed them, and the
result says so (``pinned: false``).
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from lxml import etree  # type: ignore[import-untyped]
from pydantic import BaseModel, Field
from signxml import SignatureConfiguration, XMLVerifier  # type: ignore[attr-defined]
from signxml.exceptions import InvalidInput, InvalidSignature

from workers_core.efactura.errors import MalformedXml, UnsafeXml
from workers_core.efactura.safe_xml import parse_untrusted
from workers_core.errors import NonRetryable

MAX_ENTRIES = 8
MAX_ENTRY_BYTES = 20 * 1024 * 1024
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


class SignatureInvalid(NonRetryable):
    """The ZIP's signature does not verify: altered, truncated or signed by someone else."""

    problem_type = "efactura-signature-invalid"


class SignatureCheck(BaseModel):
    valid: bool
    pinned: bool = Field(description="Checked against a configured ANAF certificate.")
    signer: str | None = Field(default=None, description="The signing certificate's subject.")


class AnafError(BaseModel):
    """One line of ANAF's error file for a ``nok`` invoice."""

    message: str
    rule_id: str | None = Field(default=None, description="e.g. BR-RO-100, when ANAF names one.")


class AnafArchive(BaseModel):
    """What a download ZIP holds, its signature checked."""

    raw: bytes = Field(description="The ZIP as ANAF sent it (what to archive).")
    document_name: str
    document: bytes
    is_error_list: bool
    errors: list[AnafError]
    signature: SignatureCheck


def open_archive(data: bytes, pinned: Sequence[x509.Certificate] = ()) -> AnafArchive:
    """Read and verify an ANAF download; raises SignatureInvalid or MalformedXml."""
    files = _read_zip(data)
    signatures = [name for name in files if name.startswith("semnatura_")]
    documents = [name for name in files if not name.startswith("semnatura_")]
    if len(signatures) != 1 or len(documents) != 1:
        raise MalformedXml(
            f"ANAF ZIP should hold one document and one semnatura_*.xml, not {sorted(files)}"
        )
    name = documents[0]
    check = verify_detached(files[signatures[0]], {name: files[name]}, pinned)
    root = parse_untrusted(files[name]).getroot()
    errors = _error_lines(root)
    return AnafArchive(
        raw=data,
        document_name=name,
        document=files[name],
        is_error_list=etree.QName(root).localname == "header",
        errors=errors,
        signature=check,
    )


def verify_detached(
    signature_xml: bytes, files: dict[str, bytes], pinned: Sequence[x509.Certificate] = ()
) -> SignatureCheck:
    """Verify a detached XMLDSig over ``files`` (its references, by name)."""
    try:
        tree = parse_untrusted(signature_xml)  # no DOCTYPE or entities before signxml sees it
    except (MalformedXml, UnsafeXml) as exc:
        raise SignatureInvalid(f"the signature file is not usable XML: {exc.message}") from exc
    # ANAF digests the file's bytes (no Transforms); a canonicalising Transform needs the tree.
    as_tree = tree.find(f".//{{{DSIG_NS}}}Reference/{{{DSIG_NS}}}Transforms") is not None

    def resolve(uri: str) -> Any:
        data = files.get(uri)
        if data is None or not as_tree:
            return data
        return parse_untrusted(data).getroot()

    embedded = _embedded_certificate(tree.getroot())
    candidates = list(pinned) or ([embedded] if embedded is not None else [])
    if not candidates:
        raise SignatureInvalid("the signature carries no certificate and none is pinned")
    verifier = XMLVerifier()
    # libxml2's subtree c14n writes ``xmlns=""`` on grandchildren of an element that declares
    # a default namespace, which no other signer does; a signature written with
    # ``xmlns="…xmldsig#"`` (no ``ds:`` prefix) only verifies with those excised.
    verifier.excise_empty_xmlns_declarations = tree.getroot().prefix is None
    last: Exception | None = None
    for cert in candidates:
        try:
            verifier.verify(
                signature_xml,
                x509_cert=cert,
                uri_resolver=resolve,
                expect_config=SignatureConfiguration(require_x509=False, expect_references=1),
            )
        except (InvalidSignature, InvalidInput) as exc:
            last = exc
            continue
        return SignatureCheck(valid=True, pinned=bool(pinned), signer=cert.subject.rfc4514_string())
    raise SignatureInvalid(f"ANAF's signature does not verify: {last}")


def load_certificates(paths: Sequence[Path]) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for path in paths:
        certs.extend(x509.load_pem_x509_certificates(path.read_bytes()))
    return certs


def _read_zip(data: bytes) -> dict[str, bytes]:
    """Entries by name, refusing what a ZIP bomb or a path trick would need."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise MalformedXml(f"ANAF's download is not a ZIP: {exc}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise MalformedXml(f"ANAF ZIP has {len(infos)} entries")
        files: dict[str, bytes] = {}
        for info in infos:
            if info.file_size > MAX_ENTRY_BYTES or "/" in info.filename or ".." in info.filename:
                raise MalformedXml(f"ANAF ZIP entry {info.filename!r} refused")
            try:
                files[info.filename] = archive.read(info)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
                    RuntimeError) as exc:  # bad CRC, a lying size, a cut or encrypted entry
                raise MalformedXml(f"ANAF ZIP entry {info.filename!r} unreadable: {exc}") from exc
    return files


def _embedded_certificate(signature: etree._Element) -> x509.Certificate | None:
    text = signature.findtext(f".//{{{DSIG_NS}}}X509Certificate")
    if not text:
        return None
    pem = "-----BEGIN CERTIFICATE-----\n" + "".join(text.split()) + "\n-----END CERTIFICATE-----\n"
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:  # not base64 DER: the signature cannot be checked
        raise SignatureInvalid(f"the signature's X509Certificate is unreadable: {exc}") from exc


def _error_lines(root: etree._Element) -> list[AnafError]:
    """``<Error errorMessage=…>`` lines of ANAF's error file; empty for an invoice."""
    if etree.QName(root).localname != "header":
        return []
    lines = []
    for child in root:
        if isinstance(child.tag, str) and etree.QName(child).localname == "Error":
            message = str(child.get("errorMessage", ""))
            rule = message[message.find("[") + 1 : message.find("]")] if "[" in message else None
            lines.append(AnafError(message=message, rule_id=rule or None))
    return lines
