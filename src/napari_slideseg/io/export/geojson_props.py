"""Features' ``properties`` text, per object from mappings or per block from columns.

A GeoJSON feature's ``properties`` are QuPath's ``objectType``, the id, the
classification (name and colour) with the class index, then the
measurements (:func:`~napari_slideseg.io.export.geojson_text.feature_properties`).
For millions of objects, :class:`ObjectColumns` holds the classes and the
measurements as arrays over sorted ids: a block's objects are looked up
with one ``searchsorted`` and their text is made column by column, the
same text ``json.dumps`` makes of the per-object dicts (floats as their
``repr``, non-finite values as ``null`` or left out), with no dict per
object.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..palette import ClassMap
from .common import jsonable
from .geojson_text import feature_properties

#: ``properties(ids)``: the ``properties`` JSON text of each id, or a ``%d`` template of the id.
PropertiesText = Callable[[Sequence[int]], list[bytes]] | bytes


@dataclass(frozen=True)
class ObjectColumns:
    """Classes and measurements of many objects, as arrays over their sorted ids.

    Build it with :meth:`from_arrays`. An object whose id is not in
    ``ids`` gets no classification and no measurements.

    Attributes
    ----------
    ids : numpy.ndarray
        Sorted unique int64 ids.
    classes : numpy.ndarray or None
        Class index of each id (int64), or None.
    columns : tuple of (str, numpy.ndarray, bool)
        Measurements in the order they are written: name, values per id,
        and whether a non-finite value leaves the member out (else it is
        written ``null``).
    """

    ids: np.ndarray
    classes: np.ndarray | None
    columns: tuple[tuple[str, np.ndarray, bool], ...]

    @classmethod
    def from_arrays(
        cls,
        ids: Any,
        classes: Any = None,
        columns: Mapping[str, Any] | None = None,
        optional: Sequence[str] = (),
    ) -> ObjectColumns:
        """Columns over ``ids`` (any order; of a repeated id the last row counts).

        Parameters
        ----------
        ids : array_like of int
            The objects' ids.
        classes : array_like of int, optional
            Each object's class index.
        columns : mapping of str to array_like, optional
            Measurements, one value per id, in the order they are written.
        optional : sequence of str
            Columns whose non-finite values leave the member out (a
            measurement that is unknown for that object) instead of
            writing ``null``.

        Returns
        -------
        ObjectColumns
            The table, sorted by id.

        Raises
        ------
        ValueError
            A column or ``classes`` whose length is not that of ``ids``, or
            ``ids`` that are not 1D.
        """
        ids = np.asarray(ids, np.int64)
        if ids.ndim != 1:
            raise ValueError(f"ids must be 1D, got shape {ids.shape}")
        cols = dict(columns or {})
        if classes is not None:
            cols["\0classes"] = classes
        arrays = {k: np.asarray(v) for k, v in cols.items()}
        for k, v in arrays.items():
            if v.shape != ids.shape:
                name = "classes" if k == "\0classes" else repr(k)
                raise ValueError(f"{name} has {len(v)} values for {len(ids)} ids")
        order = np.argsort(ids, kind="stable")
        sid = ids[order]
        last = np.ones(len(sid), bool)
        last[:-1] = sid[1:] != sid[:-1]  # of a repeated id, the last row (a dict's update)
        order = order[last]
        klass = arrays.pop("\0classes", None)
        return cls(
            ids=sid[last],
            classes=None if klass is None else klass.astype(np.int64)[order],
            columns=tuple((k, v[order], k in optional) for k, v in arrays.items()),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Where ``ids`` are in the table.

        Parameters
        ----------
        ids : sequence of int
            Ids to look up.

        Returns
        -------
        tuple of (numpy.ndarray, numpy.ndarray)
            Row of each id (clipped, meaningless where absent) and whether
            it is in the table.
        """
        q = np.asarray(ids, np.int64)
        if not len(self.ids):
            return np.zeros(len(q), np.int64), np.zeros(len(q), bool)
        r = np.minimum(np.searchsorted(self.ids, q), len(self.ids) - 1)
        return r, self.ids[r] == q

    def properties_text(
        self, ids: Sequence[int], classmap: ClassMap | None, object_type: str
    ) -> list[bytes]:
        """The ``properties`` JSON text of each of ``ids``, as the per-object dicts dump.

        Parameters
        ----------
        ids : sequence of int
            A block's objects.
        classmap : ClassMap or None
            Names and colours of the classes.
        object_type : str
            QuPath's ``objectType``.

        Returns
        -------
        list of bytes
            One ``{...}`` per id.
        """
        rows, found = self.rows(ids)
        head = f'{{"objectType":{json.dumps(object_type)},"id":'
        segs: list[list[str]] = [[f"{head}{i}" for i in np.asarray(ids, np.int64).tolist()]]
        if not len(self.ids):  # nothing to look up
            return [(t + "}").encode() for t in segs[0]]
        if self.classes is not None and classmap is not None:
            names = _class_members(classmap)
            c = self.classes[rows]
            known = found & (c >= 0) & (c < len(names))
            segs.append(
                [names[k] if ok else "" for k, ok in zip(c.tolist(), known.tolist(), strict=True)]
            )
        for name, values, optional in self.columns:
            segs.append(_column_text(json.dumps(name), values[rows], found, optional))
        segs.append(["}"] * len(rows))
        return ["".join(parts).encode() for parts in zip(*segs, strict=True)]


def _class_members(classmap: ClassMap) -> list[str]:
    """``,"classification":{...},"class_index":c`` for each class ``c``, as ``json.dumps`` writes it."""
    return [
        ","
        + json.dumps(
            {
                "classification": {"name": classmap.names[c], "color": list(classmap.colors[c])},
                "class_index": c,
            },
            separators=(",", ":"),
        )[1:-1]
        for c in range(classmap.n_classes)
    ]


def _column_text(key: str, values: np.ndarray, found: np.ndarray, optional: bool) -> list[str]:
    """``,"key":value`` of each object (``""`` where absent or, when ``optional``, not finite)."""
    prefix = f",{key}:"
    if values.dtype.kind == "b":
        texts = ["true" if v else "false" for v in values.tolist()]
        keep = found
    elif values.dtype.kind in "iu":
        texts = [str(v) for v in values.tolist()]
        keep = found
    elif values.dtype.kind == "f":
        finite = np.isfinite(values)
        texts = [
            repr(v) if ok else "null"
            for v, ok in zip(values.tolist(), finite.tolist(), strict=True)
        ]
        keep = found & finite if optional else found
    else:
        texts = [json.dumps(jsonable(v)) for v in values.tolist()]
        keep = found
    return [prefix + t if ok else "" for t, ok in zip(texts, keep.tolist(), strict=True)]


def check_classes(instance_classes: Mapping[int, int] | None, properties: Any) -> None:
    """Refuse classes given twice: as ``instance_classes`` and in :class:`ObjectColumns`.

    Parameters
    ----------
    instance_classes : mapping of int to int or None
        ``{id: class index}``.
    properties : object
        The export's ``properties``.

    Raises
    ------
    ValueError
        ``instance_classes`` given with columnar ``properties``.
    """
    if isinstance(properties, ObjectColumns) and instance_classes:
        raise ValueError(
            "give the classes in the ObjectColumns (classes=...), not as instance_classes"
        )


def properties_text(
    classmap: ClassMap | None,
    instance_classes: Mapping[int, int] | None,
    properties: Mapping[int, Mapping[str, Any]] | ObjectColumns | None,
    object_type: str,
) -> PropertiesText:
    """How a block's features get their ``properties`` text.

    Parameters
    ----------
    classmap : ClassMap or None
        Names and colours of the classes.
    instance_classes : mapping of int to int or None
        ``{id: class index}`` (with mapping ``properties`` or none).
    properties : mapping, ObjectColumns or None
        ``{id: {name: value}}`` measurements, or classes and measurements
        as columns (then ``instance_classes`` must be None).
    object_type : str
        QuPath's ``objectType``.

    Returns
    -------
    bytes or callable
        A ``%d`` template of the id when there are no classes and no
        properties; else ``text(ids)`` returning each id's ``properties`` JSON.

    Raises
    ------
    ValueError
        ``instance_classes`` given with columnar ``properties``.
    """
    check_classes(instance_classes, properties)
    if isinstance(properties, ObjectColumns):
        table = properties
        return lambda ids: table.properties_text(ids, classmap, object_type)
    if not instance_classes and not properties:
        return f'{{"objectType":{json.dumps(object_type)},"id":%d}}'.encode()

    def one(lid: int) -> bytes:
        cls = instance_classes.get(lid) if instance_classes else None
        extra = properties.get(lid) if properties else None
        props = feature_properties(lid, cls, classmap, object_type, extra)
        return json.dumps(props, separators=(",", ":")).encode()

    return lambda ids: [one(lid) for lid in ids]
