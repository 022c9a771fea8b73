"""SSD anchors for the two BlazeFace variants (MediaPipe's SsdAnchorsCalculator with fixed anchor size).

Short range: 128x128 input, strides 8,16,16,16 -> 2 anchors per 16x16 cell + 6 per 8x8 cell = 896.
Full range: 192x192 input, stride 4 -> 1 anchor per 48x48 cell = 2304.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorSpec:
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # each layer has 2 anchors (aspect 1 + interpolated scale) unless overridden


SHORT_RANGE = AnchorSpec(input_size=128, strides=(8, 16, 16, 16), anchors_per_layer=2)
FULL_RANGE = AnchorSpec(input_size=192, strides=(4,), anchors_per_layer=1)


def generate_anchors(spec: AnchorSpec) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1]; layers sharing a stride are merged as MediaPipe does."""
    centres: list[np.ndarray] = []
    i = 0
    while i < len(spec.strides):
        stride = spec.strides[i]
        count = 0
        while i < len(spec.strides) and spec.strides[i] == stride:
            count += spec.anchors_per_layer
            i += 1
        cells = int(np.ceil(spec.input_size / stride))
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, count, axis=0))
    return np.concatenate(centres).astype(np.float32)
