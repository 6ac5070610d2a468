"""REGES-ONLINE messages as JSON: an employee (``Salariat``) or a contract (``Contract``)
message, each with its operation, built into the ``reges2025`` XML by ``document.py``.

Field names are English; each says which XSD element it becomes. The model holds what the
XSD requires and which parts each operation needs (the XSD's own documentation of
``Contract``); the XSD (``validate.py``) stays the authority for everything else, so codes
from REGES nomenclatures the model leaves as strings (legal bases, COR) are judged there.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

Text256 = Annotated[str, Field(min_length=1, max_length=256)]
Text1024 = Annotated[str, Field(min_length=1, max_length=1024)]
LegalBasis = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9]{1,64}$", description="XSD TemeiSuspendare/TemeiIncetare code"),
]

EmployeeOperation = Literal["InregistrareSalariat", "ModificareSalariat", "CorectieSalariat",
                            "RadiereSalariat"]
ContractOperation = Literal[
    "AdaugareContract", "ModificareContract", "CorectieContract", "RadiereContract",
    "SuspendareContract", "CorectieSuspendareContract", "ModificareSuspendareContract",
    "IncetareSuspendareContract", "AnulareSuspendareContract",
    "IncetareContract", "CorectieIncetareContract", "AnulareIncetareContract",
]
IdentityDocument = Literal[
    "CarteIdentitate", "Pasaport", "BuletinIdentitate", "Alt", "CarteDeRezidenta",
    "PermisDeSedere", "AltActIdentitateRomanesc", "AltApatridTolerat", "NIF",
    "CertificatInregistrare", "PasaportBeneficiarProtectieInternationala", "AvizDeAngajare",
    "DocumentDeIdentitatetemporara",
]
ContractType = Literal[
    "ContractIndividualMunca", "ContractUcenicie", "ContractMuncaLaDomiciliu",
    "ContractMuncaTemporara", "ContractIndividualMuncaTineriDezavantajati",
    "ContractIndividualMuncaClauzaTelemunca", "ContractMuncaTemporaraClauzaTelemunca",
    "DecizieDetasare", "ContractIndividualMuncaPlataCuOra", "RaportDeServiciu",
    "RaportDeServiciuCuStatutSpecial", "ContractDeManagement", "ContractDeMuncaPentruGarzi",
    "ContractDeActivitateSportiva", "ActAdministrativDemnitar",
    "ContractConsilierPersonalDemnitar",
]
WorkingTimeNorm = Literal["NormaIntreaga840", "NormaIntreaga630", "NormaIntreagaLegiSpeciale",
                          "TimpPartial", "TimpOUG132"]
HoursSplit = Literal["OreDeZi", "OreDeNoapte", "Inegal", "OreInRepaos", "OreZiSiRepaos",
                     "OreNoapteSiRepaos", "OreZiNoapteSiRepaos"]
WorkPattern = Literal["Zilnic", "Inegal", "Schimburi", "Flexibil", "Individualizat"]
IntervalUnit = Literal["OrePeZi", "OrePeSaptamana", "OrePeLuna"]
Shift = Literal["T12_24", "T12_48", "T12_72", "Alta"]
Education = Literal[
    "Superioare", "StudiiDeScurtaDurata", "Medii", "PL", "G", "SSiLicenta", "MSiLicenta",
    "MSiLicentaSauScoalaProfesionalaSiLicenta", "ScoalaProfesioanalaSiLicenta",
    "ScoalaMaistriSiLicenta", "MSiCursDeCalificare", "MSiCursDeCalificareSiLicenta",
    "AltNivelDeStudii", "NA", "PLM", "MG",
]
SupportingDocumentType = Literal["HotarareJudecatoreasca", "ActAditional", "Decizie", "Ordin",
                                 "Nota"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Header(_Model):
    """``Header`` fields the caller chooses; ``MessageId`` is the idempotency key."""

    message_id: UUID = Field(description="MessageId: your GUID; one message is sent per id.")
    user: Text256 = Field(default="workers-core", description="User: the HR system's user.")
    author_id: UUID | None = Field(
        default=None, description="AuthorId: the employer's REGES id (default: settings)."
    )
    session_id: UUID | None = Field(default=None, description="SessionId (default: derived).")


class ForeignWorker(_Model):
    """``DetaliiSalariatStrain``."""

    permit_type: Literal[
        "LucratoriPermanenti", "Exceptie", "LucratoriSezonieri", "LucratoriStagiari", "Sportivi",
        "Nominala", "LucratoriTransfrontalieri", "LucratorInaltCalificat", "LucratoriAuPair",
    ] = Field(description="TipAutorizatie")
    permit_start: dt.datetime | None = Field(default=None, description="DataInceputAutorizatie")
    permit_end: dt.datetime | None = Field(default=None, description="DataSfarsitAutorizatie")
    permit_number: str | None = Field(default=None, description="NumarAutorizatie")


class Employee(_Model):
    """``InfoSalariat``: who the employee is."""

    address: Text256 = Field(description="Adresa")
    cnp: Text256 = Field(description="Cnp (or the passport number of a foreigner)")
    previous_cnp: Text256 | None = Field(default=None, description="CnpVechi")
    foreign_worker: ForeignWorker | None = Field(default=None, description="DetaliiSalariatStrain")
    siruta: int | None = Field(default=None, description="Localitate/CodSiruta")
    foreign_locality: Text256 | None = Field(default=None, description="LocalitateSalariatStrain")
    notes: Text256 | None = Field(default=None, description="Mentiuni")
    nationality: Text256 | None = Field(default=None, description="Nationalitate/Nume")
    last_name: Text256 = Field(description="Nume")
    first_name: Text256 = Field(description="Prenume")
    birth_date: dt.datetime | None = Field(default=None, description="DataNastere")
    country_of_residence: Text256 = Field(description="TaraDomiciliu/Nume, e.g. ROMÂNIA")
    identity_document: IdentityDocument = Field(description="TipActIdentitate")


class Occupation(_Model):
    """``Cor``: the occupation code and the COR nomenclature version."""

    code: int = Field(ge=0, description="Cod")
    version: int = Field(ge=0, description="Versiune")


class WorkingTime(_Model):
    """``TimpMunca``."""

    hours: float | None = Field(default=None, ge=0, description="Durata")
    interval: IntervalUnit | None = Field(default=None, description="IntervalTimp")
    norm: WorkingTimeNorm = Field(description="Norma")
    split: HoursSplit = Field(description="Repartizare")
    shift: Shift | None = Field(default=None, description="TipTura")
    pattern: WorkPattern | None = Field(default=None, description="RepartizareMunca")
    starts_at: dt.datetime | None = Field(default=None, description="InceputInterval")
    ends_at: dt.datetime | None = Field(default=None, description="SfarsitInterval")


class ContractContent(_Model):
    """``ContinutContract``: what the contract says."""

    employee_ref: UUID = Field(description="ReferintaSalariat/Id: REGES's id of the employee")
    occupation: Occupation = Field(description="Cor")
    recorded_on: dt.datetime = Field(description="DataConsemnare")
    signed_on: dt.datetime = Field(description="DataContract")
    starts_on: dt.datetime = Field(description="DataInceputContract")
    ends_on: dt.datetime | None = Field(default=None, description="DataSfarsitContract")
    details: Text1024 | None = Field(default=None, description="Detalii")
    number: Text256 = Field(description="NumarContract")
    salary: int = Field(ge=0, description="Salariu (RON, whole)")
    working_time: WorkingTime = Field(description="TimpMunca")
    contract_type: ContractType = Field(description="TipContract")
    duration: Literal["Nedeterminata", "Determinata"] = Field(description="TipDurata")
    norm: Literal["NormaIntreaga", "TimpPartial", "NormaOUG132"] = Field(description="TipNorma")
    workplace_type: Literal["Fix", "Mobil"] | None = Field(default=None, description="TipLocMunca")
    workplace_county: str | None = Field(default=None, description="JudetLocMunca")
    workplace_siruta: int | None = Field(default=None, description="LocalitateLocMunca/CodSiruta")
    education: Education | None = Field(default=None, description="NivelStudii")

    @model_validator(mode="after")
    def _fixed_term_has_end(self) -> Self:
        if self.duration == "Determinata" and self.ends_on is None:
            raise ValueError("a fixed-term contract (Determinata) needs ends_on")
        return self


class Suspension(_Model):
    """``Actiune xsi:type="ActiuneSuspendare"``."""

    kind: Literal["suspension"] = "suspension"
    starts_on: dt.datetime = Field(description="DataInceput")
    ends_on: dt.datetime | None = Field(default=None, description="DataSfarsit")
    ended_on: dt.datetime | None = Field(
        default=None, description="DataIncetareSuspendare (IncetareSuspendareContract)"
    )
    explanation: Text1024 | None = Field(default=None, description="Explicatie")
    legal_basis: LegalBasis = Field(description="TemeiLegal, e.g. Art51Alin1LiteraA")


class Termination(_Model):
    """``Actiune xsi:type="ActiuneIncetare"``."""

    kind: Literal["termination"] = "termination"
    ended_on: dt.datetime = Field(description="DataIncetare")
    explanation: Text1024 | None = Field(default=None, description="Explicatie")
    legal_basis: LegalBasis = Field(description="TemeiLegal, e.g. Art55LitB")


class SupportingDocument(_Model):
    """``DocumentJustificativ``: the act behind a change, suspension or termination."""

    type: SupportingDocumentType = Field(description="TipDocumentJustificativ")
    number: str = Field(min_length=1, description="NumarDocumentJustificativ")
    date: dt.datetime = Field(description="DataDocumentJustificativ")


class EmployeeMessage(_Model):
    """``<Message xsi:type="Salariat">`` to ``/api/Salariat``."""

    kind: Literal["employee"] = "employee"
    operation: EmployeeOperation
    header: Header
    employee_ref: UUID | None = Field(
        default=None, description="ReferintaSalariat/Id; every operation but InregistrareSalariat"
    )
    employee: Employee

    @model_validator(mode="after")
    def _reference_when_known(self) -> Self:
        registering = self.operation == "InregistrareSalariat"
        if registering and self.employee_ref is not None:
            raise ValueError("InregistrareSalariat creates the employee: no employee_ref")
        if not registering and self.employee_ref is None:
            raise ValueError(f"{self.operation} needs employee_ref (REGES's id of the employee)")
        return self


_NEEDS_CONTENT = {"AdaugareContract", "ModificareContract", "CorectieContract"}
_SUSPENSIONS = {"SuspendareContract", "CorectieSuspendareContract",
                "ModificareSuspendareContract", "IncetareSuspendareContract"}
_TERMINATIONS = {"IncetareContract", "CorectieIncetareContract"}


class ContractMessage(_Model):
    """``<Message xsi:type="Contract">`` to ``/api/Contract``."""

    kind: Literal["contract"] = "contract"
    operation: ContractOperation
    header: Header
    contract_ref: UUID | None = Field(
        default=None, description="ReferintaContract/Id; every operation but AdaugareContract"
    )
    content: ContractContent | None = Field(default=None, description="Continut")
    action: Suspension | Termination | None = Field(
        default=None, discriminator="kind", description="Actiune"
    )
    supporting_document: SupportingDocument | None = Field(
        default=None, description="DocumentJustificativ"
    )
    deletion_reason: str | None = Field(default=None, description="MotivRadiere (Radiere only)")

    @model_validator(mode="after")
    def _parts_of_the_operation(self) -> Self:
        op = self.operation
        if (op == "AdaugareContract") == (self.contract_ref is not None):
            raise ValueError("contract_ref: none for AdaugareContract, required for the others")
        if op in _NEEDS_CONTENT and self.content is None:
            raise ValueError(f"{op} needs content (ContinutContract)")
        if op in _SUSPENSIONS and not isinstance(self.action, Suspension):
            raise ValueError(f"{op} needs action of kind suspension (ActiuneSuspendare)")
        if op in _TERMINATIONS and not isinstance(self.action, Termination):
            raise ValueError(f"{op} needs action of kind termination (ActiuneIncetare)")
        if op not in _SUSPENSIONS | _TERMINATIONS and self.action is not None:
            raise ValueError(f"{op} takes no action")
        if op == "RadiereContract" and not self.deletion_reason:
            raise ValueError("RadiereContract needs deletion_reason (MotivRadiere)")
        return self


RegesMessage = Annotated[EmployeeMessage | ContractMessage, Field(discriminator="kind")]
