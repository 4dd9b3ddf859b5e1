"""ARKit-52 blendshape conventions: one canonical order, channel groups, name mapping.

Everything downstream maps channels *by name* through this module, never by position.
The canonical order groups the channels as Apple's ARKit documentation does: left eye,
right eye, jaw, mouth, brows, cheeks, nose, tongue.  (It is *not* the Live Link Face CSV
column order, which swaps jawLeft/jawRight and mouthLeft/mouthRight; core.face.export maps by name.)
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
NUM_BLENDSHAPES = len(ARKIT_NAMES)
INDEX: dict[str, int] = {name: i for i, name in enumerate(ARKIT_NAMES)}


def _indices(predicate) -> tuple[int, ...]:
    return tuple(i for i, n in enumerate(ARKIT_NAMES) if predicate(n))


# Lower face / lips: jaw* and mouth* (the LBE channels). Upper face: brow* and eye* (FDD channels).
LIP_INDICES = _indices(lambda n: n.startswith(("jaw", "mouth")))
UPPER_INDICES = _indices(lambda n: n.startswith(("brow", "eye")))
OTHER_INDICES = _indices(lambda n: n.startswith(("cheek", "nose", "tongue")))

GROUPS: dict[str, tuple[int, ...]] = {
    "jaw/lips": LIP_INDICES,
    "eyes": _indices(lambda n: n.startswith("eye")),
    "brows": _indices(lambda n: n.startswith("brow")),
    "cheeks/nose/tongue": OTHER_INDICES,
}

_LOWER_KEY = {name.lower(): name for name in ARKIT_NAMES}


def canonical_name(name: str) -> str | None:
    """Map a blendshape name met in the wild to its ARKit spelling, or None if unknown.

    Handles Live Link Face capitals (``EyeBlinkLeft``), glTF rig suffixes (``eyeBlink_L``),
    ``.L``/``-R`` style suffixes and namespace prefixes (``blendShape1.jawOpen``).
    """
    key = name.strip().split(".")[-1].split(":")[-1]
    key = re.sub(r"[_\-\s]?(L|Left)$", "Left", key)
    key = re.sub(r"[_\-\s]?(R|Right)$", "Right", key)
    return _LOWER_KEY.get(key.replace("_", "").lower())


def column_mapping(names: Sequence[str]) -> dict[int, int]:
    """Source column -> canonical index for every recognised name (unknown names ignored)."""
    mapping: dict[int, int] = {}
    for col, name in enumerate(names):
        canon = canonical_name(name)
        if canon is not None and INDEX[canon] not in mapping.values():
            mapping[col] = INDEX[canon]
    return mapping


def to_canonical(values: np.ndarray, names: Sequence[str], *, require_all: bool = True) -> np.ndarray:
    """Reorder ``values[..., len(names)]`` into canonical ARKit order by name.

    Missing channels raise ``ValueError`` when ``require_all`` (the default), else stay 0.
    """
    values = np.asarray(values, dtype=np.float32)
    if values.shape[-1] != len(names):
        raise ValueError(f"{values.shape[-1]} value columns but {len(names)} names")
    mapping = column_mapping(names)
    missing = sorted(set(range(NUM_BLENDSHAPES)) - set(mapping.values()))
    if missing and require_all:
        raise ValueError("missing ARKit blendshapes: " + ", ".join(ARKIT_NAMES[i] for i in missing[:8])
                         + (" ..." if len(missing) > 8 else ""))
    out = np.zeros(values.shape[:-1] + (NUM_BLENDSHAPES,), dtype=np.float32)
    for col, idx in mapping.items():
        out[..., idx] = values[..., col]
    return out


def livelink_name(name: str) -> str:
    """ARKit name as Live Link Face writes it in CSV headers (first letter capitalised)."""
    return name[0].upper() + name[1:]
