"""Class tables: ids, names and display colours of the segmentation classes."""

from __future__ import annotations

from dataclasses import dataclass

from bigseg.errors import BigsegError

IGNORE_LABEL = 255
"""Label value for unannotated pixels in truth masks; never a class id, ignored by training and metrics."""


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    color: tuple[int, int, int]

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "color": list(self.color)}


CONCRETE = (
    ClassInfo(0, "paste", (160, 160, 160)),
    ClassInfo(1, "stone", (230, 140, 40)),
    ClassInfo(2, "void", (30, 90, 230)),
)
"""The default table: polished concrete sections (0 paste/background, 1 stone = aggregate, 2 void = air)."""


def table_to_attrs(classes: tuple[ClassInfo, ...] | list[ClassInfo]) -> list[dict]:
    return [c.to_dict() for c in classes]


def _color(values) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in values)  # a colour of another length fails here, named by the caller
    return r, g, b


def table_from_attrs(items: list[dict]) -> tuple[ClassInfo, ...]:
    try:
        classes = tuple(ClassInfo(int(d["id"]), str(d["name"]), _color(d["color"])) for d in items)
    except (KeyError, TypeError, ValueError) as exc:
        raise BigsegError(f"malformed class table {items!r}: each class needs id, name and color") from exc
    validate_table(classes)
    return classes


def validate_table(classes) -> None:
    ids = [c.id for c in classes]
    if ids != list(range(len(ids))):
        raise BigsegError(f"class ids must be 0..{len(ids) - 1} in order, got {ids}")
    if len(ids) > IGNORE_LABEL:
        raise BigsegError(f"at most {IGNORE_LABEL} classes are supported, got {len(ids)}")


def concrete_ids(classes) -> dict[str, int] | None:
    """Ids of paste, stone and void in a class table (in any order, beside any other classes), or None when the
    table lacks one of them. The one test of "is this a concrete table?" for every figure that needs it."""
    by_name = {c.name: c.id for c in classes}
    if all(k in by_name for k in ("paste", "stone", "void")):
        return {k: by_name[k] for k in ("paste", "stone", "void")}
    return None
