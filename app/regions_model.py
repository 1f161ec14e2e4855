"""The painted regions of the open panorama: layers of full-resolution masks plus their motion
settings, with every edit undoable.

A :class:`RegionsModel` holds one :class:`RegionLayer` per region (name, colour, [H, W] bool
mask at the panorama's full resolution, direction, speed, motion kind, feather). Every edit goes
through its :class:`~PySide6.QtGui.QUndoStack`: brush strokes, mask pastes, fills and clears
store only the 64x64 tiles they changed (bit-packed before/after copies, never whole masks);
layer and parameter edits store the old and new values.

It also keeps ``labels``, an [H, W] int16 map of which layer shows at each pixel (-1 none; the
later layer wins where layers overlap, as in the engine's :func:`engine.animate.base.
region_weights`), updated incrementally in the rectangle each edit touched. The canvas and the
look-around view draw from it.

Signals: ``changed`` after any edit (not when only the current layer changes);
``pixelsChanged(x, y, w, h)`` with the rectangle (in panorama pixels, never wrapping) whose
labels changed; ``layersChanged`` when layers were added, removed, reordered, recoloured or
replaced (the whole overlay must be rebuilt); ``currentChanged(int)``.

Brush geometry: a stroke segment from (x0, y0) to (x1, y1) in continuous panorama coordinates
(pixel (col, row) covers [col, col + 1) x [row, row + 1)) paints exactly the pixels whose
centres lie within ``radius`` of the segment, with ``radius = max(diameter / 2, sqrt(0.5))``
so that even the thinnest brush paints the pixel under the cursor. x is *unwrapped*: a segment
from x = W - 3 to x = W + 3 crosses the seam and paints both edges. Rows outside the image are
clipped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from engine.errors import InputError
from engine.io import (
    MAX_FEATHER_PX,
    MAX_PROMPT_CHARS,
    MAX_SPEED_DEG_S,
    Region,
    load_regions,
    save_regions,
)

__all__ = [
    "DEFAULT_FEATHER_PX",
    "MOTIONS",
    "PALETTE",
    "RegionLayer",
    "RegionsModel",
    "TILE",
    "brush_radius",
    "capsule_mask",
]

DEFAULT_FEATHER_PX = float(Region.__dataclass_fields__["feather_px"].default)
MOTIONS = ("flow", "sway")
TILE = 64  # undo granularity: strokes store the 64x64 tiles they changed
PALETTE: tuple[tuple[int, int, int], ...] = (
    (80, 160, 255),  # sky blue
    (255, 120, 60),  # orange
    (90, 210, 110),  # green
    (235, 80, 200),  # magenta
    (250, 220, 60),  # yellow
    (60, 220, 220),  # cyan
    (170, 110, 255),  # violet
    (240, 70, 80),  # red
    (160, 200, 60),  # lime
    (255, 160, 190),  # pink
)
_PARAM_FIELDS = (
    "name",
    "color",
    "direction_deg",
    "speed_deg_s",
    "motion",
    "feather_px",
    "prompt",
)
_FIELD_LABELS = {
    "name": "name",
    "color": "colour",
    "direction_deg": "direction",
    "speed_deg_s": "speed",
    "motion": "motion",
    "feather_px": "edge feather",
    "prompt": "prompt",
}


@dataclass(eq=False)
class RegionLayer:
    """One painted region. ``mask`` is edited in place by the model (read-only elsewhere)."""

    name: str
    color: tuple[int, int, int]  # RGB 0..255, distinct per layer
    mask: np.ndarray  # [H, W] bool at the panorama's full resolution
    direction_deg: float = 0.0  # engine convention: 0 east (right), 90 north (up)
    speed_deg_s: float = 2.0
    motion: str = "flow"  # "flow" | "sway"
    feather_px: float = DEFAULT_FEATHER_PX
    prompt: str = ""  # what it is and how it moves (text-conditioned models; motion words)

    def params(self) -> dict:
        return {k: getattr(self, k) for k in _PARAM_FIELDS}


# ------------------------------------------------------------------------------ geometry


def brush_radius(diameter: float) -> float:
    """The radius a brush of ``diameter`` panorama pixels paints with (module docs)."""
    return max(float(diameter) / 2.0, math.sqrt(0.5))


def capsule_mask(
    x0: float, y0: float, x1: float, y1: float, radius: float, cols: range, rows: range
) -> np.ndarray:
    """[len(rows), len(cols)] bool: pixel centres within ``radius`` of the segment.

    ``cols`` may be unwrapped (negative or >= W); centres are at (col + 0.5, row + 0.5).
    """
    cx = np.arange(cols.start, cols.stop, dtype=np.float64) + 0.5
    cy = np.arange(rows.start, rows.stop, dtype=np.float64) + 0.5
    dx, dy = x1 - x0, y1 - y0
    px = cx[None, :] - x0
    py = cy[:, None] - y0
    length2 = dx * dx + dy * dy
    if length2 > 0:
        t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0)
    else:
        t = np.zeros((1, 1))
    ex = px - t * dx
    ey = py - t * dy
    return ex * ex + ey * ey <= radius * radius


def _tiles_of(rect: tuple[int, int, int, int]) -> Iterable[tuple[int, int]]:
    """(tile_row, tile_col) of the tiles overlapping rect (x, y, w, h)."""
    x, y, w, h = rect
    for ty in range(y // TILE, (y + h - 1) // TILE + 1):
        for tx in range(x // TILE, (x + w - 1) // TILE + 1):
            yield ty, tx


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the nonzero pixels, or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


# ------------------------------------------------------------------------------ undo commands


class _TileDiff:
    """Bit-packed before/after copies of the changed tiles of one layer's mask."""

    def __init__(self, layer: RegionLayer) -> None:
        self.layer = layer
        self.tiles: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, tuple[int, int]]] = {}
        self.before: dict[tuple[int, int], np.ndarray] = {}  # strokes: tiles before the stroke

    def __len__(self) -> int:
        return len(self.tiles)

    def add(self, key: tuple[int, int], before: np.ndarray, after: np.ndarray) -> None:
        self.tiles[key] = (np.packbits(before), np.packbits(after), before.shape)

    def nbytes(self) -> int:
        return sum(b.nbytes + a.nbytes for b, a, _ in self.tiles.values())

    def apply(self, model: RegionsModel, which: int) -> None:
        mask = self.layer.mask
        rects = []
        for (ty, tx), entry in self.tiles.items():
            shape = entry[2]
            bits = np.unpackbits(entry[which], count=shape[0] * shape[1]).reshape(shape)
            y, x = ty * TILE, tx * TILE
            mask[y : y + shape[0], x : x + shape[1]] = bits.astype(bool)
            rects.append((x, y, shape[1], shape[0]))
        model._pixels_edited(rects)


class _DiffCommand(QUndoCommand):
    """A mask edit that was already applied when it is pushed (strokes, pastes, clears)."""

    def __init__(self, model: RegionsModel, diff: _TileDiff, text: str) -> None:
        super().__init__(text)
        self.model, self.diff = model, diff
        self._first = True

    def redo(self) -> None:
        if self._first:  # already on the mask
            self._first = False
            return
        self.diff.apply(self.model, 1)

    def undo(self) -> None:
        self.diff.apply(self.model, 0)


class _LayersCommand(QUndoCommand):
    """Replace the whole layer list (add, remove, import) and the current index."""

    def __init__(
        self,
        model: RegionsModel,
        new: list[RegionLayer],
        new_current: int,
        text: str,
    ) -> None:
        super().__init__(text)
        self.model = model
        self.old, self.old_current = list(model.layers), model.current
        self.new, self.new_current = list(new), new_current

    def redo(self) -> None:
        self.model._set_layers(self.new, self.new_current)

    def undo(self) -> None:
        self.model._set_layers(self.old, self.old_current)


class _ParamsCommand(QUndoCommand):
    """Change parameters of one layer; consecutive ``merge`` edits of the same fields of the
    same layer (a dial being dragged) collapse into one undo step."""

    ID = 4101

    def __init__(self, model: RegionsModel, layer: RegionLayer, new: dict, merge: bool) -> None:
        fields = ", ".join(_FIELD_LABELS[k] for k in new)
        super().__init__(f"Change {fields} of '{layer.name}'")
        self.model, self.layer = model, layer
        self.old = {k: getattr(layer, k) for k in new}
        self.new = dict(new)
        self.merge = merge

    def id(self) -> int:  # noqa: A003 - Qt API
        return self.ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt API
        if not (
            isinstance(other, _ParamsCommand)
            and other.merge
            and other.layer is self.layer
            and other.new.keys() == self.new.keys()
        ):
            return False
        self.new = dict(other.new)
        return True

    def redo(self) -> None:
        self.model._apply_params(self.layer, self.new)

    def undo(self) -> None:
        self.model._apply_params(self.layer, self.old)


# ------------------------------------------------------------------------------ the model


class RegionsModel(QObject):
    """Region layers of one panorama (see the module docs)."""

    changed = Signal()
    currentChanged = Signal(int)
    pixelsChanged = Signal(int, int, int, int)  # x, y, w, h in panorama pixels
    layersChanged = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.layers: list[RegionLayer] = []
        self.current = -1
        self.size: tuple[int, int] = (0, 0)
        self.labels = np.full((0, 0), -1, np.int16)  # [H, W] topmost layer per pixel
        self._stroke: _TileDiff | None = None
        self._stroke_erase = False
        self._stroke_rects: list[tuple[int, int, int, int]] = []

    # -- whole-model operations --------------------------------------------------------

    def reset(self, height: int, width: int) -> None:
        """A new panorama of ``height`` x ``width``: no layers, clean undo history."""
        if height <= 0 or width <= 0:
            raise ValueError(f"panorama size must be positive, got {height}x{width}")
        self._stroke = None
        self.undo_stack.clear()
        self.size = (int(height), int(width))
        self.layers = []
        self.labels = np.full(self.size, -1, np.int16)
        self.current = -1
        self.undo_stack.setClean()
        self.layersChanged.emit()
        self.currentChanged.emit(-1)
        self.changed.emit()

    def is_empty(self) -> bool:
        """No painted pixel in any layer."""
        return not any(layer.mask.any() for layer in self.layers)

    def set_current(self, i: int) -> None:
        i = int(i)
        if not -1 <= i < len(self.layers):
            raise IndexError(f"no region layer {i} (there are {len(self.layers)})")
        if i != self.current:
            self.current = i
            self.currentChanged.emit(i)  # a selection, not an edit: no ``changed``

    def layer_index(self, layer: RegionLayer) -> int:
        for i, candidate in enumerate(self.layers):
            if candidate is layer:
                return i
        return -1

    # -- layers ------------------------------------------------------------------------

    def _require_size(self) -> None:
        if self.size[0] <= 0:
            raise RuntimeError("RegionsModel.reset(height, width) must be called first")

    def _check_index(self, i: int) -> RegionLayer:
        if not 0 <= i < len(self.layers):
            raise IndexError(f"no region layer {i} (there are {len(self.layers)})")
        return self.layers[i]

    def unique_name(self, base: str, ignore: RegionLayer | None = None) -> str:
        taken = {layer.name for layer in self.layers if layer is not ignore}
        if base not in taken:
            return base
        n = 2
        while f"{base} {n}" in taken:
            n += 1
        return f"{base} {n}"

    def next_color(self) -> tuple[int, int, int]:
        used = {tuple(layer.color) for layer in self.layers}
        for color in PALETTE:
            if color not in used:
                return color
        # more layers than palette entries: golden-angle hues
        hue = (len(self.layers) * 0.618034) % 1.0
        r, g, b = _hsv_to_rgb(hue, 0.65, 1.0)
        return (r, g, b)

    def add_layer(self, name: str | None = None, motion: str = "flow") -> int:
        """Append an empty layer (undoable), make it current and return its index."""
        self._require_size()
        if motion not in MOTIONS:
            raise InputError(f"motion must be one of {', '.join(MOTIONS)}, got {motion!r}")
        base = _clean_name(name) if name is not None else f"region {len(self.layers) + 1}"
        layer = RegionLayer(
            name=self.unique_name(base),
            color=self.next_color(),
            mask=np.zeros(self.size, bool),
            motion=motion,
        )
        new = [*self.layers, layer]
        self.undo_stack.push(_LayersCommand(self, new, len(new) - 1, f"Add region '{layer.name}'"))
        return len(new) - 1

    def remove_layer(self, i: int) -> None:
        layer = self._check_index(i)
        new = [x for x in self.layers if x is not layer]
        current = self.current
        if current > i or current >= len(new):
            current -= 1
        self.undo_stack.push(_LayersCommand(self, new, current, f"Remove region '{layer.name}'"))

    def move_layer(self, i: int, j: int) -> None:
        """Move layer i to position j (later layers win where regions overlap)."""
        layer = self._check_index(i)
        self._check_index(j)
        if i == j:
            return
        new = [x for x in self.layers if x is not layer]
        new.insert(j, layer)
        self.undo_stack.push(_LayersCommand(self, new, j, f"Reorder region '{layer.name}'"))

    def set_params(self, i: int, *, merge: bool = False, **fields) -> None:
        """Change name/color/direction_deg/speed_deg_s/motion/feather_px/prompt of layer i
        (undoable; several fields at once are one edit).

        ``merge=True`` folds the edit into the previous one if that changed the same fields of
        the same layer (continuous drags). Bad values raise InputError (one line)."""
        layer = self._check_index(i)
        new = {}
        for key, value in fields.items():
            if key not in _PARAM_FIELDS:
                raise TypeError(f"unknown region parameter {key!r}; allowed: {_PARAM_FIELDS}")
            new[key] = self._checked(layer, key, value)
        new = {k: v for k, v in new.items() if v != getattr(layer, k)}
        if new:
            self.undo_stack.push(_ParamsCommand(self, layer, new, merge))

    def _checked(self, layer: RegionLayer, key: str, value):
        if key == "name":
            return self.unique_name(_clean_name(value), ignore=layer)
        if key == "color":
            try:
                rgb = tuple(int(c) for c in value)
            except (TypeError, ValueError):
                raise InputError(f"colour must be three integers 0..255, got {value!r}") from None
            if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
                raise InputError(f"colour must be three integers 0..255, got {value!r}")
            return rgb
        if key == "prompt":
            text = " ".join(str(value).split())
            if len(text) > MAX_PROMPT_CHARS:
                raise InputError(f"a prompt holds at most {MAX_PROMPT_CHARS} characters")
            return text
        if key == "motion":
            if value not in MOTIONS:
                raise InputError(f"motion must be one of {', '.join(MOTIONS)}, got {value!r}")
            return value
        limits = {
            "direction_deg": (-math.inf, math.inf),
            "speed_deg_s": (0.0, MAX_SPEED_DEG_S),
            "feather_px": (0.0, MAX_FEATHER_PX),
        }[key]
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{key.replace('_', ' ')} must be a number, got {value!r}") from None
        if not math.isfinite(number) or not limits[0] <= number <= limits[1]:
            raise InputError(
                f"{key.replace('_', ' ')} must be a finite number in "
                f"[{limits[0]:g}, {limits[1]:g}], got {value!r}"
            )
        return number % 360.0 if key == "direction_deg" else number

    # -- pixels ------------------------------------------------------------------------

    def paint_mask(self, i: int, mask: np.ndarray, erase: bool = False) -> None:
        """One undoable edit: OR (or with ``erase``, clear) an [H, W] bool mask into layer i."""
        layer = self._check_index(i)
        mask = np.asarray(mask)
        if mask.shape != self.size:
            raise InputError(f"mask has shape {mask.shape}; expected {self.size}")
        mask = mask.astype(bool, copy=False)
        box = _bbox(mask)
        if box is None:
            return
        text = ("Erase" if erase else "Paint") + f" '{layer.name}'"
        self._edit(layer, [box], lambda sub, m=mask: _combine(sub, m, erase), text)

    def clear(self, i: int) -> None:
        """Erase every pixel of layer i (one undoable edit)."""
        layer = self._check_index(i)
        box = _bbox(layer.mask)
        if box is not None:
            self._edit(layer, [box], lambda sub: np.zeros_like(sub[0]), f"Clear '{layer.name}'")

    def _edit(self, layer, rects, fn, text: str) -> None:
        """Apply ``fn((old_tile, y, x)) -> new_tile`` to every tile of ``rects`` and push the
        changed tiles as one command."""
        diff = _TileDiff(layer)
        h, w = self.size
        changed = []
        for rect in rects:
            for ty, tx in _tiles_of(rect):
                y, x = ty * TILE, tx * TILE
                old = layer.mask[y : min(y + TILE, h), x : min(x + TILE, w)]
                new = fn((old, y, x))
                if not np.array_equal(old, new):
                    diff.add((ty, tx), old.copy(), new)
                    old[...] = new
                    changed.append((x, y, old.shape[1], old.shape[0]))
        if len(diff):
            self._pixels_edited(changed)
            self.undo_stack.push(_DiffCommand(self, diff, text))

    # -- strokes (the canvas's brush and eraser) ------------------------------------------

    def begin_stroke(self, i: int, erase: bool = False) -> None:
        """Start a brush (or eraser) stroke on layer i; segments paint live, and
        :meth:`end_stroke` pushes the whole stroke as one undo step."""
        layer = self._check_index(i)
        self._stroke = _TileDiff(layer)
        self._stroke_erase = erase

    @property
    def stroking(self) -> bool:
        return self._stroke is not None

    def stroke_segment(self, x0: float, y0: float, x1: float, y1: float, diameter: float) -> None:
        """Paint the capsule from (x0, y0) to (x1, y1) (unwrapped x; module docs)."""
        if self._stroke is None:
            raise RuntimeError("begin_stroke() first")
        h, w = self.size
        r = brush_radius(diameter)
        r0 = max(0, math.floor(min(y0, y1) - r - 0.5))
        r1 = min(h, math.ceil(max(y0, y1) + r + 0.5))
        c0 = math.floor(min(x0, x1) - r - 0.5)
        c1 = math.ceil(max(x0, x1) + r + 0.5)
        if r1 <= r0:
            return
        mask = self._stroke.layer.mask
        before = self._stroke.before
        rects = []
        # fold the unwrapped column range onto [0, W) in chunks that do not cross the seam
        start = c0
        while start < c1:
            stop = min(c1, (start // w + 1) * w)
            inside = capsule_mask(x0, y0, x1, y1, r, range(start, stop), range(r0, r1))
            if inside.any():
                x = start % w
                rect = (x, r0, stop - start, r1 - r0)
                for key in _tiles_of(rect):
                    if key not in before:
                        ty, tx = key
                        before[key] = _tile(mask, ty, tx).copy()
                sub = mask[r0:r1, x : x + stop - start]
                if self._stroke_erase:
                    sub[inside] = False
                else:
                    sub |= inside
                rects.append(rect)
            start = stop
        if rects:
            self._pixels_edited(rects)

    def end_stroke(self) -> None:
        """Finish the stroke: push its changed tiles as one undo step (nothing if none)."""
        diff, self._stroke = self._stroke, None
        if diff is None:
            return
        mask = diff.layer.mask
        for (ty, tx), old in diff.before.items():
            new = _tile(mask, ty, tx)
            if not np.array_equal(old, new):
                diff.add((ty, tx), old, new.copy())
        diff.before = {}
        if len(diff):
            verb = "Erase" if self._stroke_erase else "Paint"
            self.undo_stack.push(_DiffCommand(self, diff, f"{verb} '{diff.layer.name}'"))
        self.changed.emit()  # views that waited for the stroke to end catch up

    # -- engine regions ----------------------------------------------------------------

    def to_regions(self) -> list[Region]:
        """Engine regions of the non-empty layers (masks copied: painting on does not change
        a generation already running)."""
        return [
            Region(
                name=layer.name,
                mask=layer.mask.copy(),
                direction_deg=float(layer.direction_deg) % 360.0,
                speed_deg_s=float(layer.speed_deg_s),
                feather_px=float(layer.feather_px),
                color=tuple(int(c) for c in layer.color),
                motion=layer.motion,
                prompt=layer.prompt,
            )
            for layer in self.layers
            if layer.mask.any()
        ]

    def set_regions(self, regions: Sequence[Region]) -> None:
        """Replace all layers by ``regions`` (one undoable edit; masks must match ``size``)."""
        self._require_size()
        new: list[RegionLayer] = []
        names: set[str] = set()
        for r in regions:
            if r.mask.shape != self.size:
                raise InputError(
                    f"region '{r.name}' has a {r.mask.shape[1]}x{r.mask.shape[0]} mask; "
                    f"the panorama is {self.size[1]}x{self.size[0]}"
                )
            name = r.name
            n = 2
            while name in names:
                name, n = f"{r.name} {n}", n + 1
            names.add(name)
            new.append(
                RegionLayer(
                    name=name,
                    color=tuple(int(c) for c in r.color),
                    mask=np.array(r.mask, dtype=bool, copy=True),
                    direction_deg=float(r.direction_deg) % 360.0,
                    speed_deg_s=float(r.speed_deg_s),
                    motion=r.motion,
                    feather_px=float(r.feather_px),
                    prompt=r.prompt,
                )
            )
        self.undo_stack.push(
            _LayersCommand(self, new, len(new) - 1 if new else -1, "Replace regions")
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the non-empty layers as an engine region file (:func:`engine.io.save_regions`);
        InputError if nothing is painted."""
        regions = self.to_regions()
        if not regions:
            raise InputError(f"{os.fspath(path)}: nothing painted yet; no regions to export")
        save_regions(path, regions)

    def load(self, path: str | os.PathLike) -> None:
        """Replace the layers by an engine region file's (undoable); InputError propagates."""
        self._require_size()
        self.set_regions(load_regions(path, self.size))

    def state(self) -> dict:
        """A plain snapshot for projects: size, current and per-layer params + mask copies."""
        return {
            "size": list(self.size),
            "current": self.current,
            "layers": [{**layer.params(), "mask": layer.mask.copy()} for layer in self.layers],
        }

    def restore(self, state: dict) -> None:
        """Inverse of :meth:`state`; leaves a clean undo history."""
        h, w = (int(v) for v in state["size"])
        self.reset(h, w)
        layers = []
        for item in state.get("layers", []):
            mask = np.asarray(item["mask"], dtype=bool)
            if mask.shape != (h, w):
                raise InputError(f"saved region mask has shape {mask.shape}; expected {(h, w)}")
            params = {k: item[k] for k in _PARAM_FIELDS if k in item}
            params["color"] = tuple(int(c) for c in params.get("color", PALETTE[0]))
            layers.append(RegionLayer(mask=mask.copy(), **params))
        current = int(state.get("current", len(layers) - 1))
        self._set_layers(layers, current if -1 <= current < len(layers) else len(layers) - 1)
        self.undo_stack.clear()
        self.undo_stack.setClean()

    # -- internals (called by the undo commands) ----------------------------------------

    def _set_layers(self, layers: list[RegionLayer], current: int) -> None:
        self.layers = list(layers)
        self.current = current if -1 <= current < len(self.layers) else len(self.layers) - 1
        before = self.labels.copy()
        self._recompute_labels((0, 0, self.size[1], self.size[0]))
        self.layersChanged.emit()
        box = _bbox(before != self.labels)  # e.g. nothing for a new, empty layer
        if box is not None:
            self.pixelsChanged.emit(*box)
        self.currentChanged.emit(self.current)
        self.changed.emit()

    def _apply_params(self, layer: RegionLayer, values: dict) -> None:
        for key, value in values.items():
            setattr(layer, key, value)
        if "color" in values:
            self.layersChanged.emit()
        self.changed.emit()

    def _pixels_edited(self, rects: list[tuple[int, int, int, int]]) -> None:
        for rect in _merge_rects(rects):
            self._recompute_labels(rect)
            self.pixelsChanged.emit(*rect)
        self.changed.emit()

    def _recompute_labels(self, rect: tuple[int, int, int, int]) -> None:
        x, y, w, h = rect
        out = self.labels[y : y + h, x : x + w]
        out.fill(-1)
        for i, layer in enumerate(self.layers):
            out[layer.mask[y : y + h, x : x + w]] = i


# ------------------------------------------------------------------------------ helpers


def _tile(mask: np.ndarray, ty: int, tx: int) -> np.ndarray:
    return mask[ty * TILE : ty * TILE + TILE, tx * TILE : tx * TILE + TILE]


def _combine(sub: tuple[np.ndarray, int, int], mask: np.ndarray, erase: bool) -> np.ndarray:
    old, y, x = sub
    m = mask[y : y + old.shape[0], x : x + old.shape[1]]
    return old & ~m if erase else old | m


def _merge_rects(rects: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Union bounding box of rects that lie on the same side of the image's middle, so a
    stroke along the seam reports two small rectangles rather than the whole width."""
    if len(rects) <= 1:
        return rects
    out = []
    xs = [r[0] + r[2] / 2 for r in rects]
    mid = (min(xs) + max(xs)) / 2
    for group in (
        [r for r, c in zip(rects, xs) if c < mid],
        [r for r, c in zip(rects, xs) if c >= mid],
    ):
        if group:
            x0 = min(r[0] for r in group)
            y0 = min(r[1] for r in group)
            x1 = max(r[0] + r[2] for r in group)
            y1 = max(r[1] + r[3] for r in group)
            out.append((x0, y0, x1 - x0, y1 - y0))
    return out


def _clean_name(name) -> str:
    if not isinstance(name, str):
        raise InputError(f"region name must be text, got {type(name).__name__}")
    name = " ".join("".join(c for c in name if c.isprintable() or c.isspace()).split())
    if not name:
        raise InputError("region name must not be empty")
    if len(name) > 200:
        raise InputError("region name is longer than 200 characters")
    return name


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return round(r * 255), round(g * 255), round(b * 255)
