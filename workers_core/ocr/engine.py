"""The OCR engine seam: one protocol, RapidOCR by default, PaddleOCR on request.

Engines are heavy (ONNX sessions, ~30 MB of models): one per replica, built in ``setup()``,
their packages imported only then. The choices that depend on the replica (threads, GPU)
are pure functions, tested alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from workers_core.config import Settings

if TYPE_CHECKING:  # Pillow comes with the ocr extra; this module must import without it
    from PIL import Image

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
PROBE_TEXT = "OCR 2026"


Point = tuple[float, float]


@dataclass(frozen=True)
class RecognisedLine:
    """A text line as the engine saw it, before clean-up and ordering."""

    text: str
    confidence: float
    points: tuple[Point, Point, Point, Point]  # clockwise from top-left, in pixels


class OcrEngine(Protocol):
    """Recognise the text lines of one page image. Implementations serialise their own calls."""

    name: str

    def recognise(self, image: Image.Image) -> list[RecognisedLine]: ...

    def describe(self) -> dict[str, str]: ...


def onnx_threads(replica_cpus: float, usable_cpus: int) -> int:
    """Intra-op threads = the CPUs Ray reserved for the replica (at least 1), never more than
    the process may run on: more threads than cores only adds contention with other replicas."""
    return max(1, min(int(replica_cpus), usable_cpus))


def wants_gpu(enabled: bool, replica_gpus: float, cuda_available: bool) -> bool:
    """Use CUDA only when allowed, reserved for this replica in Ray and actually present."""
    return enabled and replica_gpus > 0 and cuda_available


def onnx_providers(enabled: bool, replica_gpus: float, available: Sequence[str]) -> list[str]:
    """onnxruntime execution providers in priority order; CPU is always the fallback."""
    if wants_gpu(enabled, replica_gpus, CUDA_PROVIDER in available):
        return [CUDA_PROVIDER, CPU_PROVIDER]
    return [CPU_PROVIDER]


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's core count)."""
    return len(os.sched_getaffinity(0))


def load_engine(settings: Settings, replica_cpus: float, replica_gpus: float) -> OcrEngine:
    """Build the engine ``settings.ocr_engine`` names; raises ``EngineUnavailable`` with the fix."""
    threads = onnx_threads(replica_cpus, usable_cpus())
    if settings.ocr_engine == "paddle":
        from workers_core.ocr.paddle import PaddleOcrEngine

        return PaddleOcrEngine.load(
            settings.ocr_paddle_model_dir,
            threads=threads,
            use_gpu=settings.ocr_use_gpu,
            replica_gpus=replica_gpus,
            use_angle_cls=settings.ocr_use_angle_cls,
        )
    from workers_core.ocr.rapid import RapidOcrEngine

    return RapidOcrEngine.load(
        threads=threads,
        use_gpu=settings.ocr_use_gpu,
        replica_gpus=replica_gpus,
        use_angle_cls=settings.ocr_use_angle_cls,
    )


def probe_image() -> Image.Image:
    """A small page with known text: warms the engine up in ``setup()`` and backs ``health()``.

    Square and 736 px: RapidOCR's detector scales the shorter side up to 736 px, so a
    thin strip would become a large, slow image."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (736, 736), "white")
    font = ImageFont.load_default(size=40)
    ImageDraw.Draw(image).text((20, 16), PROBE_TEXT, font=font, fill="black")
    return image
