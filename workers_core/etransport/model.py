"""The e-Transport declaration as JSON: a notification (optionally correcting a UIT), a
deletion, a confirmation or a vehicle change — the four choices of the XSD v2 root.

The model rejects early what the Schematron would reject late (rule ids in the messages);
the compiled Schematron run in ``validate.py`` stays the authority for everything else.
Field names are English; each says which XML attribute it becomes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from workers_core.etransport.codes import (
    BORDER_POINTS,
    COUNTIES,
    EU_COUNTRIES,
    INTRA_EU,
    NO_PTF_AT_END,
    NO_PTF_AT_START,
    PURPOSE_RULE,
    PURPOSES,
    STORAGE_LEGS,
    TIN,
    ConfirmationType,
    DocumentType,
    OperationType,
    uit_is_valid,
)


def _uit(value: str) -> str:
    if not uit_is_valid(value):
        raise ValueError(
            f"[BR-019] {value!r} is not a UIT: 16 characters, the last two the last two digits "
            "of the sum of the code points of the first fourteen"
        )
    return value


def _two_decimals(value: Decimal) -> Decimal:
    if value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValueError("[BR-035..042] at most 2 decimals")
    if value >= Decimal(10) ** 12:
        raise ValueError("[BR-036..042] at most 12 integer digits")
    return value


Uit = Annotated[str, AfterValidator(_uit)]
Positive = Annotated[Decimal, Field(gt=0), AfterValidator(_two_decimals)]
NonNegative = Annotated[Decimal, Field(ge=0), AfterValidator(_two_decimals)]
Plate = Annotated[str, Field(pattern=r"^[0-9A-Z]{2,20}$", description="BR-031..033")]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1; Greece is EL.")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Goods(_Model):
    """One ``bunuriTransportate`` line."""

    purpose: int = Field(description="codScopOperatiune (BR-068..070, BR-205).")
    tariff_code: str | None = Field(
        default=None, pattern=r"^(?:\d{4}|\d{6}|\d{8})$", description="codTarifar (CN, BR-034)."
    )
    name: str = Field(min_length=1, max_length=200, description="denumireMarfa.")
    quantity: Positive = Field(description="cantitate.")
    unit: str = Field(pattern=r"^[0-9A-Z]{2,3}$", description="codUnitateMasura (UN/ECE 20).")
    net_weight_kg: Positive | None = Field(default=None, description="greutateNeta.")
    gross_weight_kg: Positive = Field(description="greutateBruta.")
    value_ron: NonNegative | None = Field(
        default=None, description="valoareLeiFaraTva: value in lei, VAT excluded."
    )
    ref: str | None = Field(default=None, min_length=1, max_length=50, description="refDeclarant.")

    @model_validator(mode="after")
    def _weights(self) -> Self:
        if self.net_weight_kg is not None and self.gross_weight_kg < self.net_weight_kg:
            raise ValueError(
                f"[BR-020] gross weight {self.gross_weight_kg} is below net weight "
                f"{self.net_weight_kg}"
            )
        return self


class Partner(_Model):
    """``partenerComercial``: the buyer or seller on the other side of the operation."""

    country: Country = Field(description="codTara.")
    code: str | None = Field(
        default=None, min_length=1, max_length=30, description="cod: fiscal code, or PF."
    )
    name: str = Field(min_length=1, max_length=200, description="denumire.")


class Transport(_Model):
    """``dateTransport``: vehicle, trailers, carrier (organizator transport) and date."""

    vehicle_plate: Plate = Field(description="nrVehicul.")
    trailer1_plate: Plate | None = Field(default=None, description="nrRemorca1.")
    trailer2_plate: Plate | None = Field(default=None, description="nrRemorca2.")
    carrier_country: Country = Field(description="codTaraOrgTransport.")
    carrier_code: str | None = Field(
        default=None, min_length=1, max_length=30, description="codOrgTransport (CUI, or PF)."
    )
    carrier_name: str = Field(min_length=1, max_length=200, description="denumireOrgTransport.")
    date: dt.date = Field(description="dataTransport: when the transport starts.")


class Address(_Model):
    """``locatie``: a Romanian address on the route."""

    county: int = Field(description="codJudet: 1-40, 51, 52 (40 is București; BR-CL-002).")
    city: str = Field(min_length=2, max_length=100, description="denumireLocalitate (BR-214).")
    street: str = Field(min_length=2, max_length=100, description="denumireStrada (BR-215).")
    number: str | None = Field(default=None, min_length=1, max_length=20)
    block: str | None = Field(default=None, min_length=1, max_length=30)
    entrance: str | None = Field(default=None, min_length=1, max_length=20)
    floor: str | None = Field(default=None, min_length=1, max_length=20)
    apartment: str | None = Field(default=None, min_length=1, max_length=20)
    other: str | None = Field(default=None, min_length=1, max_length=200, description="alteInfo")
    postal_code: str | None = Field(default=None, min_length=1, max_length=20)

    @model_validator(mode="after")
    def _county(self) -> Self:
        if self.county not in COUNTIES:
            raise ValueError(f"[BR-CL-002] county code {self.county} is not in listJudet")
        return self


class RoutePoint(_Model):
    """``locStartTraseuRutier`` / ``locFinalTraseuRutier``: exactly one of a border point,
    a customs office or an address (BR-210, BR-211)."""

    border_point: int | None = Field(default=None, description="codPtf (1-38).")
    customs_office: int | None = Field(default=None, description="codBirouVamal.")
    address: Address | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [v for v in (self.border_point, self.customs_office, self.address) if v is not None]
        if len(given) != 1:
            raise ValueError(
                "[BR-210/BR-211] give exactly one of border_point, customs_office, address"
            )
        if self.border_point is not None and self.border_point not in BORDER_POINTS:
            raise ValueError(f"[BR-CL] border point {self.border_point} is not 1-38")
        return self


class TransportDocument(_Model):
    """``documenteTransport``: CMR, invoice, delivery note or other."""

    type: DocumentType = Field(description="tipDocument.")
    number: str | None = Field(default=None, min_length=1, max_length=50)
    date: dt.date = Field(description="dataDocument.")
    notes: str | None = Field(default=None, min_length=1, max_length=200, description="observatii")

    @model_validator(mode="after")
    def _other_needs_notes(self) -> Self:
        if self.type is DocumentType.OTHER and not self.notes:
            raise ValueError("[BR-026] a document of type 9999 (Altele) needs notes")
        return self


class Notification(_Model):
    """``notificare``; ``corrects`` names the UIT it replaces (``corectie``)."""

    operation: OperationType = Field(description="codTipOperatiune.")
    corrects: Uit | None = Field(default=None, description="corectie/@uit.")
    goods: list[Goods] = Field(min_length=1)
    partner: Partner
    transport: Transport
    start: RoutePoint
    end: RoutePoint
    documents: list[TransportDocument] = Field(min_length=1)
    previous: list[Uit] = Field(
        default_factory=list, description="notificareAnterioara/@uit (not for 30-70: BR-025)."
    )

    @model_validator(mode="after")
    def _rules(self) -> Self:
        for check in (_purposes, _goods_fields, _partner_country, _route, _fiscal_codes):
            check(self)
        return self


def _purposes(n: Notification) -> None:
    allowed = PURPOSES[n.operation]
    rule = PURPOSE_RULE.get(n.operation, "BR-205")
    for i, line in enumerate(n.goods):
        if line.purpose not in allowed:
            raise ValueError(
                f"[{rule}] goods[{i}].purpose {line.purpose} is not allowed for operation "
                f"{n.operation.value} ({n.operation.name}): one of {sorted(allowed)}"
            )


def _goods_fields(n: Notification) -> None:
    if n.operation in STORAGE_LEGS:
        return
    for i, line in enumerate(n.goods):
        for rule, name in (
            ("BR-206", "tariff_code"),
            ("BR-207", "net_weight_kg"),
            ("BR-208", "value_ron"),
        ):
            if getattr(line, name) is None:
                raise ValueError(
                    f"[{rule}] goods[{i}].{name} is required unless the operation is 60 or 70"
                )


def _partner_country(n: Notification) -> None:
    country = n.partner.country
    if n.operation is OperationType.TTN and country != "RO":
        raise ValueError(f"[BR-005] a domestic transport (30) has a RO partner, not {country}")
    if n.operation in (OperationType.IMP, OperationType.EXP) and country in EU_COUNTRIES:
        raise ValueError(f"[BR-006] import/export partners are outside the EU, not {country}")
    if n.operation in INTRA_EU and (country not in EU_COUNTRIES or country == "RO"):
        raise ValueError(f"[BR-004] an intra-EU operation's partner is in the EU, not {country}")
    if n.previous and n.operation.value in (30, 40, 50, 60, 70):
        raise ValueError("[BR-025] previous notifications only for operations 10-24")


def _route(n: Notification) -> None:
    op = n.operation.value
    if n.start.border_point is not None and op in NO_PTF_AT_START:
        raise ValueError(f"[BR-212] operation {op} does not start at a border point")
    if n.end.border_point is not None and op in NO_PTF_AT_END:
        raise ValueError(f"[BR-213] operation {op} does not end at a border point")
    if n.start.customs_office is not None and n.operation is not OperationType.IMP:
        raise ValueError("[BR-216] only an import (40) starts at a customs office")
    if n.end.customs_office is not None and n.operation is not OperationType.EXP:
        raise ValueError("[BR-217] only an export (50) ends at a customs office")


def _fiscal_codes(n: Notification) -> None:
    domestic = n.operation is OperationType.TTN
    code = n.partner.code or ""
    if domestic and not (TIN.match(code) or code == "PF"):
        raise ValueError("[BR-007] a domestic transport's partner code is a RO fiscal code or PF")
    if n.transport.carrier_country == "RO":
        carrier = n.transport.carrier_code or ""
        if not (TIN.match(carrier) or (domestic and carrier == "PF")):
            rule = "BR-209" if domestic else "BR-043"
            raise ValueError(f"[{rule}] a Romanian carrier's code is its fiscal code")


class Confirmation(_Model):
    """``confirmare``: the recipient confirms (partly) or refuses the goods of a UIT."""

    uit: Uit
    type: ConfirmationType = Field(description="tipConfirmare.")
    notes: str | None = Field(default=None, min_length=1, max_length=200)


class VehicleChange(_Model):
    """``modifVehicul``: the only change allowed once the transport has started."""

    uit: Uit
    vehicle_plate: Plate
    trailer1_plate: Plate | None = None
    trailer2_plate: Plate | None = None
    changed_at: dt.datetime = Field(description="dataModificare (yyyy-mm-ddThh:mm:ss; BR-203).")
    notes: str | None = Field(default=None, min_length=1, max_length=200)


class Declaration(_Model):
    """One upload: exactly one of ``notification``, ``deletion`` (the UIT to delete),
    ``confirmation`` or ``vehicle_change``."""

    declarant_code: str = Field(description="codDeclarant: CUI or CNP, no RO (BR-002).")
    ref: str | None = Field(
        default=None, min_length=1, max_length=50, description="refDeclarant: your reference."
    )
    after_outage: bool = Field(
        default=False, description="declPostAvarie=D: declared after a system outage."
    )
    notification: Notification | None = None
    deletion: Uit | None = Field(default=None, description="stergere/@uit.")
    confirmation: Confirmation | None = None
    vehicle_change: VehicleChange | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if not TIN.match(self.declarant_code):
            raise ValueError(
                f"[BR-002] declarant_code {self.declarant_code!r} is not a RO fiscal code "
                "(CUI of 2-10 digits or CNP of 13, digits only)"
            )
        kinds = [self.notification, self.deletion, self.confirmation, self.vehicle_change]
        if sum(k is not None for k in kinds) != 1:
            raise ValueError(
                "give exactly one of notification, deletion, confirmation, vehicle_change"
            )
        return self

    @property
    def kind(self) -> str:
        """The XML root's child: notificare, stergere, confirmare or modifVehicul."""
        if self.notification is not None:
            return "notificare"
        if self.deletion is not None:
            return "stergere"
        return "confirmare" if self.confirmation is not None else "modifVehicul"
