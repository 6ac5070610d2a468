"""Hostile XML against every parser entry point: external entities (file, http, parameter,
external DTD), billion laughs, quadratic blowup, deep nesting, huge documents, foreign
namespaces and non-XML. Each must end in a typed, non-retryable error with a message; no
file content may come back and no network request may leave.

The entry points are the public functions (validators, invoice identification, SAF-T file
validation, the ANAF download's signature check) and the functions the ANAF and REGES
clients parse their answers with.
"""

from __future__ import annotations

import io
import secrets
import socket
import struct
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from workers_core.efactura.archive import SignatureInvalid, open_archive, verify_detached
from workers_core.efactura.errors import MalformedXml, UnsafeXml
from workers_core.efactura.submission import identify
from workers_core.efactura.validate import validator_for as ubl_validator
from workers_core.errors import NonRetryable
from workers_core.etransport.validate import validator_for as etransport_validator
from workers_core.integrations.anaf.efactura import _xml_answer
from workers_core.integrations.anaf.errors import AnafRejected
from workers_core.integrations.reges import _parse as reges_answer
from workers_core.reges.errors import RegesRejected
from workers_core.reges.validate import validator_for as reges_validator
from workers_core.saft.validate import validate_file
from workers_core.saft.writer import FILED_NS

UBL_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
ALLOWED = (UnsafeXml, MalformedXml, AnafRejected, RegesRejected, SignatureInvalid)


class Listener:
    """A loopback TCP port that counts connections: any count > 0 is an exfiltration."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


Expected = type[Exception] | tuple[type[Exception], ...] | None


@dataclass(frozen=True)
class Hostile:
    """``build(secret_file, port, root)`` makes the document; ``expect`` is the error at the
    root of the chain (None: a parse may succeed, but must leak nothing)."""

    build: Callable[[Path, int, str], bytes]
    expect: Expected


def _doctype(body: str, root: str) -> bytes:
    return f'<?xml version="1.0"?>\n<!DOCTYPE r [{body}]>\n{root}'.encode()


def _wrap(root: str, inner: str) -> str:
    return root.replace("/>", f">{inner}</{root.split()[0][1:]}>", 1)


def _laughs(root: str, in_attribute: bool = False) -> bytes:
    ents = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    el = root.replace("/>", ' a="&l9;"/>', 1) if in_attribute else _wrap(root, "&l9;")
    return _doctype(ents, el)


HUGE_BYTES = 11 * 1024 * 1024  # past the 10 MB cap and libxml2's 10 MB text node limit

DOCUMENTS: dict[str, Hostile] = {
    "xxe-file": Hostile(lambda f, p, r: _doctype(
        f'<!ENTITY e SYSTEM "file://{f}">', _wrap(r, "&e;")), UnsafeXml),
    "xxe-http": Hostile(lambda f, p, r: _doctype(
        f'<!ENTITY e SYSTEM "http://127.0.0.1:{p}/e">', _wrap(r, "&e;")), UnsafeXml),
    "xxe-parameter-entity": Hostile(lambda f, p, r: _doctype(
        f'<!ENTITY % p SYSTEM "http://127.0.0.1:{p}/p.dtd"> %p;', r), UnsafeXml),
    "external-dtd": Hostile(lambda f, p, r: (
        f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:{p}/x.dtd">{r}').encode(),
        UnsafeXml),
    "doctype-only": Hostile(lambda f, p, r: _doctype("", r), UnsafeXml),
    # libxml2's amplification guard may fire while the DTD is read, before our DOCTYPE check.
    "billion-laughs": Hostile(lambda f, p, r: _laughs(r), (UnsafeXml, MalformedXml)),
    "billion-laughs-in-attribute": Hostile(lambda f, p, r: _laughs(r, True), MalformedXml),
    "quadratic-blowup": Hostile(lambda f, p, r: _doctype(
        f'<!ENTITY a "{"x" * 50_000}">', _wrap(r, "&a;" * 50_000)), (UnsafeXml, MalformedXml)),
    "xinclude": Hostile(lambda f, p, r: _wrap(
        r.replace("/>", ' xmlns:xi="http://www.w3.org/2001/XInclude"/>', 1),
        f'<xi:include parse="text" href="file://{f}"/>').encode(), None),
    "deep-nesting": Hostile(lambda f, p, r: _wrap(
        r, "<a>" * 100_000 + "</a>" * 100_000).encode(), MalformedXml),
    "huge": Hostile(lambda f, p, r: _wrap(r, "x" * HUGE_BYTES).encode(), UnsafeXml),
    "wrong-namespace": Hostile(lambda f, p, r: b'<Invoice xmlns="urn:evil:ns"><a/></Invoice>',
                               MalformedXml),
    "not-xml": Hostile(lambda f, p, r: b"%PDF-1.7\n\x00\xff\xfe binary", MalformedXml),
    "empty": Hostile(lambda f, p, r: b"", MalformedXml),
    "truncated": Hostile(lambda f, p, r: r.replace("/>", ">").encode() + b"<unclosed",
                         MalformedXml),
}


@dataclass(frozen=True)
class EntryPoint:
    root: str
    call: Callable[[bytes, Path, Path], object]  # (document, schemas root, scratch dir)
    overrides: dict[str, Expected]


def _saft(xml: bytes, schemas: Path, scratch: Path) -> object:
    path = scratch / "d406.xml"
    path.write_bytes(xml)
    return validate_file(path, schemas)


SIGNED = {"factura.xml": b"<Invoice/>"}
ANSWER_OVERRIDES: dict[str, Expected] = {"wrong-namespace": None}

ENTRY_POINTS: dict[str, EntryPoint] = {
    "ubl-validate": EntryPoint(
        f'<Invoice xmlns="{UBL_NS}"/>',
        lambda x, s, _: ubl_validator(s).validate(x), {}),
    "ubl-identify": EntryPoint(f'<Invoice xmlns="{UBL_NS}"/>', lambda x, s, _: identify(x), {}),
    "etransport-validate": EntryPoint(
        '<eTransport xmlns="mfp:anaf:dgti:eTransport:declaratie:v2"/>',
        lambda x, s, _: etransport_validator(s).validate(x), {}),
    "reges-validate": EntryPoint(
        '<Message xmlns="http://www.inspectiamuncii.ro/reges2025"/>',
        lambda x, s, _: reges_validator(s).validate(x), {}),
    # SAF-T files are streamed (hundreds of MB are normal): no size cap, but libxml2's
    # 10 MB text-node limit still holds; the DOCTYPE check runs on the first element.
    "saft-validate-file": EntryPoint(f'<AuditFile xmlns="{FILED_NS}"/>', _saft,
                                     {"huge": MalformedXml}),
    "anaf-efactura-answer": EntryPoint(
        '<header xmlns="mfp:anaf:dgti:efactura:stareMesajFactura:v1"/>',
        lambda x, s, _: _xml_answer(x, "stareMesaj"), ANSWER_OVERRIDES),
    "anaf-download-signature": EntryPoint(
        '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>',
        lambda x, s, _: verify_detached(x, SIGNED), {"wrong-namespace": SignatureInvalid}),
    "reges-answer": EntryPoint('<MessageResponse xmlns="http://www.reges.ro/"/>',
                               lambda x, s, _: reges_answer(x, "status"), ANSWER_OVERRIDES),
}


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out:
        out.append(cur)
        cur = cur.__cause__
    return out


@pytest.mark.parametrize("doc", sorted(DOCUMENTS))
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_hostile_xml_ends_in_a_typed_error_and_leaks_nothing(
    entry: str, doc: str, schemas: Path, listener: Listener, tmp_path: Path,
) -> None:
    marker = secrets.token_hex(16)
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(marker)
    point, hostile = ENTRY_POINTS[entry], DOCUMENTS[doc]
    expect = point.overrides.get(doc, hostile.expect)
    xml = hostile.build(secret_file, listener.port, point.root)
    hits_before = listener.hits
    try:
        outcome: object = point.call(xml, schemas, tmp_path)
    except ALLOWED as exc:
        assert isinstance(exc, NonRetryable) and exc.message.strip()
        assert marker not in str(exc)
        if expect is not None:
            assert any(isinstance(e, expect) for e in _chain(exc)), (
                f"{entry}/{doc}: {type(exc).__name__}: {exc}")
        outcome = exc
    else:
        assert expect is None, f"{entry}/{doc} was accepted: {outcome!r}"[:500]
    assert marker not in repr(outcome)
    assert listener.hits == hits_before, f"{entry}/{doc} reached the network"


# ANAF's download ZIP: what a bomb or a broken archive needs, refused with MalformedXml.

def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _lying_size(data: bytes, size: int) -> bytes:
    """The central directory's uncompressed size of the first entry set to ``size``."""
    out = bytearray(data)
    struct.pack_into("<I", out, out.find(b"PK\x01\x02") + 24, size)
    return bytes(out)


GOOD = {"3001.xml": b"<Invoice/>", "semnatura_3001.xml": b"<Signature/>"}


@pytest.mark.parametrize(("case", "data"), [
    ("declared-bomb", _zip({"3001.xml": b"\0" * (21 * 1024 * 1024),
                            "semnatura_3001.xml": b"<s/>"})),
    ("lying-size-bomb", _lying_size(_zip({"3001.xml": b"<a>" + b" " * 5_000_000 + b"</a>",
                                          "semnatura_3001.xml": b"<s/>"}), 100)),
    ("bad-crc", _lying_size(_zip(GOOD), 3)),
    ("too-many-entries", _zip({f"{i}.xml": b"<a/>" for i in range(9)})),
    ("path-traversal", _zip({"../3001.xml": b"<a/>", "semnatura_3001.xml": b"<s/>"})),
    ("not-a-zip", b"PK\x03\x04 cut short"),
    ("empty", b""),
])
def test_a_hostile_anaf_download_is_malformed(case: str, data: bytes) -> None:
    with pytest.raises(MalformedXml) as caught:
        open_archive(data)
    assert caught.value.message.strip()


def test_an_unreadable_embedded_certificate_is_an_invalid_signature() -> None:
    signature = (b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><KeyInfo><X509Data>'
                 b"<X509Certificate>bm90IGEgY2VydGlmaWNhdGU=</X509Certificate>"
                 b"</X509Data></KeyInfo></Signature>")
    with pytest.raises(SignatureInvalid, match="X509Certificate"):
        verify_detached(signature, SIGNED)
