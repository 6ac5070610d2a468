"""RapidOCR 3.x: PaddleOCR's PP-OCR models on onnxruntime, shipped inside the wheel.

Model paths are given explicitly so RapidOCR never reaches its download code (it would
fetch from the network when a default model file is missing or fails its checksum).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import onnxruntime  # type: ignore[import-untyped]
import rapidocr
from PIL import Image
from rapidocr import RapidOCR
from rapidocr.utils.output import RapidOCROutput

from workers_core.ocr.engine import CUDA_PROVIDER, RecognisedLine, onnx_providers
from workers_core.ocr.errors import EngineUnavailable

MODELS_DIR = Path(rapidocr.__file__).parent / "models"
# The PP-OCRv6 small det/rec pair is multilingual (46 Latin languages including Romanian,
# ș ț ă â î in the dictionary); the classifier only tells 0° from 180°.
MODEL_FILES = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}


class RapidOcrEngine:
    """One RapidOCR instance; its settings mutate on some calls, so calls are serialised."""

    name = "rapidocr"

    def __init__(self, ocr: RapidOCR, threads: int) -> None:
        self._ocr = ocr
        self._threads = threads
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        threads: int,
        use_gpu: bool,
        replica_gpus: float,
        use_angle_cls: bool,
        models_dir: Path = MODELS_DIR,
    ) -> RapidOcrEngine:
        """Configure from local model files only; sessions are created on the first call."""
        missing = [f for f in MODEL_FILES.values() if not (models_dir / f).is_file()]
        if missing:
            raise EngineUnavailable(
                f"RapidOCR models missing in {models_dir}: {', '.join(missing)}; "
                "reinstall rapidocr (the wheel ships them)"
            )
        providers = onnx_providers(use_gpu, replica_gpus, onnxruntime.get_available_providers())
        params: dict[str, Any] = {
            f"{section}.model_path": str(models_dir / file) for section, file in MODEL_FILES.items()
        }
        params.update(
            {
                # Upright scans: the 0/180° classifier flips correct Romanian lines (notes §2.1).
                "Global.use_cls": use_angle_cls,
                "Global.text_score": 0.0,  # the task filters by the job's min_confidence
                "Global.log_level": "error",  # an empty page is not worth a warning per job
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                "EngineConfig.onnxruntime.use_cuda": CUDA_PROVIDER in providers,
            }
        )
        return cls(RapidOCR(params=params), threads)

    def recognise(self, image: Image.Image) -> list[RecognisedLine]:
        with self._lock:
            out = self._ocr(image)
        if not isinstance(out, RapidOCROutput) or out.boxes is None or not out.txts:
            return []
        scores = out.scores or ()
        return [
            RecognisedLine(
                text=text,
                confidence=float(score),
                points=tuple((float(x), float(y)) for x, y in box),  # type: ignore[arg-type]
            )
            for box, text, score in zip(out.boxes.tolist(), out.txts, scores, strict=True)
        ]

    def describe(self) -> dict[str, str]:
        det = self._ocr.text_det
        session = getattr(getattr(det, "session", None), "session", None)
        providers = session.get_providers() if session is not None else ["not loaded"]
        return {
            "engine": self.name,
            "threads": str(self._threads),
            "providers": ",".join(providers),
        }
