"""Does a road shipment need an e-Transport declaration (a UIT)?

The rule, as notes/anaf.md §3.4 records it (sources there as [ETL]):

- Ordin ANAF/AVR 1337/1268/2024 art. 1(4): it concerns road vehicles with a maximum
  authorised mass (MTMA) of at least 2.5 t carrying goods of a total gross mass over
  500 kg OR a total value over 10 000 lei, VAT excluded.
- OUG 41/2022 with OPANAF 802/2022: on domestic transports (operation 30) only goods with a
  high fiscal risk count — the OPANAF 802/2022 list of tariff codes. That list is NOT in
  the notes, so the caller passes it (``high_risk_codes``: CN code prefixes).
- OUG 115/2023: since 15.12.2023 every international road transport (any other operation)
  is declared, whatever the goods.

Our reading, to confirm with the law texts: on domestic transports the 500 kg / 10 000 lei
thresholds are summed over the high-risk lines only; on international ones over all lines.
A vehicle whose MTMA is unknown is treated as in scope (the safe side).
"""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal
from typing import Final

from pydantic import BaseModel, Field

from workers_core.etransport.codes import OperationType

MIN_VEHICLE_MASS_KG: Final = Decimal(2500)
GROSS_MASS_THRESHOLD_KG: Final = Decimal(500)
VALUE_THRESHOLD_RON: Final = Decimal(10_000)


class ShipmentLine(BaseModel):
    tariff_code: str | None = Field(default=None, description="CN code (4-8 digits).")
    gross_weight_kg: Decimal = Field(ge=0)
    value_ron: Decimal = Field(default=Decimal(0), ge=0, description="Lei, VAT excluded.")


class Shipment(BaseModel):
    operation: OperationType = Field(description="30 is domestic; every other is international.")
    lines: list[ShipmentLine] = Field(min_length=1)
    vehicle_max_mass_kg: Decimal | None = Field(
        default=None, description="MTMA; unknown is treated as at least 2.5 t."
    )


class Applicability(BaseModel):
    required: bool
    reasons: list[str]
    gross_weight_kg: Decimal = Field(description="Counted toward the 500 kg threshold.")
    value_ron: Decimal = Field(description="Counted toward the 10 000 lei threshold.")


def is_high_risk(tariff_code: str | None, high_risk_codes: Collection[str]) -> bool:
    """A CN code listed, or under a listed heading (prefix), in the OPANAF 802/2022 list."""
    if not tariff_code:
        return False
    return any(tariff_code.startswith(prefix) for prefix in high_risk_codes)


def needs_etransport(shipment: Shipment, high_risk_codes: Collection[str]) -> Applicability:
    """The verdict with its reasons; ``high_risk_codes`` is the OPANAF 802/2022 list."""
    if (
        shipment.vehicle_max_mass_kg is not None
        and shipment.vehicle_max_mass_kg < MIN_VEHICLE_MASS_KG
    ):
        return Applicability(
            required=False,
            reasons=[f"vehicle MTMA {shipment.vehicle_max_mass_kg} kg is under 2.5 t"],
            gross_weight_kg=Decimal(0),
            value_ron=Decimal(0),
        )
    domestic = shipment.operation is OperationType.TTN
    counted = [
        line
        for line in shipment.lines
        if not domestic or is_high_risk(line.tariff_code, high_risk_codes)
    ]
    weight = sum((line.gross_weight_kg for line in counted), Decimal(0))
    value = sum((line.value_ron for line in counted), Decimal(0))
    reasons = [
        "domestic transport: only high fiscal risk goods count (OPANAF 802/2022)"
        if domestic
        else "international transport: all goods count (OUG 115/2023)"
    ]
    if domestic and not counted:
        reasons.append("no line has a high fiscal risk tariff code")
    over_weight = weight > GROSS_MASS_THRESHOLD_KG
    over_value = value > VALUE_THRESHOLD_RON
    if over_weight:
        reasons.append(f"gross mass {weight} kg > 500 kg")
    if over_value:
        reasons.append(f"value {value} lei > 10 000 lei (VAT excluded)")
    if counted and not (over_weight or over_value):
        reasons.append(f"under both thresholds ({weight} kg, {value} lei)")
    return Applicability(
        required=bool(counted) and (over_weight or over_value),
        reasons=reasons,
        gross_weight_kg=weight,
        value_ron=value,
    )
