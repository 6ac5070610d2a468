"""PaddleOCR 3.x (optional engine): models only from a local directory, never downloaded.

Expected layout of ``WORKERS_OCR_PADDLE_MODEL_DIR`` (PaddleX inference exports)::

    det/inference.yml   det/inference.json|pdmodel   det/inference.pdiparams
    rec/...             (same files)
    textline_orientation/...   only when WORKERS_OCR_USE_ANGLE_CLS=true

The package is imported lazily: workers without the ``paddle`` extra never load it.
"""

from __future__ import annotations

import importlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from workers_core.ocr.engine import RecognisedLine, wants_gpu
from workers_core.ocr.errors import EngineUnavailable

INSTALL_HINT = "install workers-core[paddle] (paddleocr>=3 and paddlepaddle)"


def model_dirs(root: Path | None, use_angle_cls: bool) -> dict[str, Path]:
    """Check the directory before importing anything heavy; the error names what is missing."""
    if root is None:
        raise EngineUnavailable(
            "engine 'paddle' needs WORKERS_OCR_PADDLE_MODEL_DIR (models are never downloaded)"
        )
    parts = ["det", "rec"] + (["textline_orientation"] if use_angle_cls else [])
    dirs = {part: root / part for part in parts}
    missing = [
        str(d)
        for d in dirs.values()
        if not (d / "inference.yml").is_file() or not (d / "inference.pdiparams").is_file()
    ]
    if missing:
        raise EngineUnavailable(
            f"PaddleOCR models missing (inference.yml + inference.pdiparams) in: "
            f"{', '.join(missing)}"
        )
    return dirs


def _model_name(model_dir: Path) -> str:
    # PaddleX checks the configured model name against the export's own Global.model_name.
    yaml: Any = importlib.import_module("yaml")
    config = yaml.safe_load((model_dir / "inference.yml").read_text(encoding="utf-8"))
    try:
        return str(config["Global"]["model_name"])
    except (KeyError, TypeError) as exc:
        raise EngineUnavailable(f"{model_dir}/inference.yml names no Global.model_name") from exc


class PaddleOcrEngine:
    """A PaddleOCR pipeline without document preprocessing (upright scans assumed)."""

    name = "paddle"

    def __init__(self, pipeline: Any, device: str, threads: int) -> None:
        self._pipeline = pipeline
        self._device = device
        self._threads = threads
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        root: Path | None,
        threads: int,
        use_gpu: bool,
        replica_gpus: float,
        use_angle_cls: bool,
    ) -> PaddleOcrEngine:
        dirs = model_dirs(root, use_angle_cls)
        # PaddleX probes the model hosters at import unless told not to; models are local here.
        os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
        try:
            paddleocr: Any = importlib.import_module("paddleocr")
            paddle: Any = importlib.import_module("paddle")
        except ImportError as exc:
            raise EngineUnavailable(f"engine 'paddle' is not installed: {INSTALL_HINT}") from exc
        cuda = bool(paddle.device.is_compiled_with_cuda())
        device = "gpu:0" if wants_gpu(use_gpu, replica_gpus, cuda) else "cpu"
        kwargs: dict[str, Any] = {}
        for kind, part in (
            ("text_detection", "det"),
            ("text_recognition", "rec"),
            ("textline_orientation", "textline_orientation"),
        ):
            if part in dirs:
                kwargs[f"{kind}_model_dir"] = str(dirs[part])
                kwargs[f"{kind}_model_name"] = _model_name(dirs[part])
        pipeline = paddleocr.PaddleOCR(
            **kwargs,
            use_doc_orientation_classify=False,
            use_doc_unwarping=False,
            use_textline_orientation=use_angle_cls,
            device=device,
            cpu_threads=threads,
        )
        return cls(pipeline, device, threads)

    def recognise(self, image: Image.Image) -> list[RecognisedLine]:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        with self._lock:
            results = list(self._pipeline.predict(bgr))
        lines: list[RecognisedLine] = []
        for res in results:
            for text, score, poly in zip(
                res["rec_texts"], res["rec_scores"], res["rec_polys"], strict=True
            ):
                corners = [(float(x), float(y)) for x, y in np.asarray(poly).tolist()[:4]]
                lines.append(
                    RecognisedLine(
                        str(text), float(score), (corners[0], corners[1], corners[2], corners[3])
                    )
                )
        return lines

    def describe(self) -> dict[str, str]:
        return {"engine": self.name, "device": self._device, "threads": str(self._threads)}
