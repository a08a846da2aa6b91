"""Snapshots as the fleet uploads them (PNG, JPEG, or a clip: a tar of PNG frames) -> the image to
score. One decoder for every reader (inference, the trainer's datasets), with the limits that keep
a hostile upload from exhausting memory."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence

import numpy as np

MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_PIXELS = 4096 * 4096  # a decompression bomb fails here, not in memory
MIN_SIDE = 16  # the backbone halves the image four times


class BadImage(ValueError):
    """The bytes are not an image this service can score (the record is dead-lettered)."""


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) > 262 and data[257:262] == b"ustar":
        return "application/x-tar"
    return ""


def decode_image(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 RGB [H, W, 3]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise BadImage(f"image of {img.width}x{img.height} pixels is larger than {MAX_PIXELS}")
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise BadImage(f"not a decodable image: {exc}") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < MIN_SIDE:
        raise BadImage(f"image shape {rgb.shape}: expected RGB of at least {MIN_SIDE}x{MIN_SIDE} pixels")
    return rgb


def decode_snapshot(data: bytes, content_type: str = "", frame_id: str = "", clip_frame_ids: Sequence[str] = ()) -> np.ndarray:
    """A snapshot object -> the image to score. A clip (tar of `<i>.png`, `clip_frame_ids[i]`) is
    scored on its firing frame (`frame_id`), or its first frame when that is not in the clip."""
    kind = content_type or _sniff(data)
    if kind in ("image/png", "image/jpeg"):
        return decode_image(data)
    if kind != "application/x-tar":
        raise BadImage(f"unsupported content type {content_type!r}")
    index = list(clip_frame_ids).index(frame_id) if frame_id in clip_frame_ids else 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            names = {m.name: m for m in tar.getmembers() if m.isfile()}
            member = names.get(f"{index}.png") or names.get("0.png")
            if member is None:
                raise BadImage(f"clip has no frame {index}.png (members: {sorted(names)[:5]})")
            file = tar.extractfile(member)
            assert file is not None  # a regular file (isfile above)
            return decode_image(file.read())
    except tarfile.TarError as exc:
        raise BadImage(f"not a readable clip: {exc}") from None
