"""The state of an index object as snapshot sections, for indexes without a state of their own.

An object's attributes are walked: numpy arrays become sections, JSON values stay in the meta,
objects of this package's classes (``contentmatch_match.*``) are rebuilt without calling their
``__init__``, locks are made anew. Nothing else is accepted (a callable, a foreign class), so
restoring runs no code from the snapshot and only builds classes this service defines.

A snapshot records the object's attribute names; restoring into a build whose index has other
attributes is refused (its derived state may mean something else), as is another
``SNAPSHOT_VERSION`` of the class (bump it when stored state changes meaning).
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

import numpy as np

from contentmatch_match.index.snapshot import Section, SnapshotError, State

_PACKAGE = "contentmatch_match."
_LOCK_TYPES = {type(threading.Lock()): "lock", type(threading.RLock()): "rlock"}


def object_state(obj: object) -> State:
    sections: dict[str, Section] = {}
    tree = _encode(obj, sections, [0])
    cls = type(obj)
    meta = {
        "kind": f"{cls.__module__}:{cls.__qualname__}",
        "version": getattr(cls, "SNAPSHOT_VERSION", 1),
        "fields": sorted(vars(obj)),
        "tree": tree,
    }
    return meta, sections


def restore_object(cls: type, meta: dict[str, Any], sections: dict[str, Any]) -> Any:
    """An instance of ``cls`` as the state describes it (refused when written by an index of
    another shape)."""
    kind = f"{cls.__module__}:{cls.__qualname__}"
    if meta.get("kind") != kind:
        raise SnapshotError(f"snapshot holds {meta.get('kind')!r}, expected {kind!r}")
    version = getattr(cls, "SNAPSHOT_VERSION", 1)
    if meta.get("version") != version:
        raise SnapshotError(
            f"{kind} snapshot version {meta.get('version')} is not readable by this build "
            f"(reads version {version}): replay the registry instead"
        )
    fields = sorted(vars(cls()))
    if meta.get("fields") != fields:
        raise SnapshotError(f"{kind} snapshot was written by a build with other attributes")
    obj = _decode(meta["tree"], sections)
    if type(obj) is not cls:
        raise SnapshotError(f"snapshot tree is not a {kind}")
    return obj


def _encode(v: Any, sections: dict[str, Section], counter: list[int]) -> Any:
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, int | float) and not isinstance(v, np.generic):
        return v
    if isinstance(v, np.generic):
        return {"__scalar__": v.dtype.name, "v": v.item()}
    if isinstance(v, np.ndarray):
        name = f"a{counter[0]}"
        counter[0] += 1
        sections[name] = v
        return {"__array__": name}
    if isinstance(v, type) and issubclass(v, np.generic):
        return {"__dtype__": np.dtype(v).name}
    if type(v) in _LOCK_TYPES:
        return {"__lock__": _LOCK_TYPES[type(v)]}
    if isinstance(v, list):
        return [_encode(x, sections, counter) for x in v]
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x, sections, counter) for x in v]}
    if isinstance(v, dict):
        items = [
            [_encode(k, sections, counter), _encode(x, sections, counter)] for k, x in v.items()
        ]
        return {"__dict__": items}
    cls = type(v)
    if cls.__module__.startswith(_PACKAGE) and hasattr(v, "__dict__"):
        state = {k: _encode(x, sections, counter) for k, x in vars(v).items()}
        return {"__object__": f"{cls.__module__}:{cls.__qualname__}", "state": state}
    raise TypeError(f"cannot snapshot a {cls.__module__}.{cls.__qualname__}")


def _decode(t: Any, sections: dict[str, Any]) -> Any:
    if isinstance(t, list):
        return [_decode(x, sections) for x in t]
    if not isinstance(t, dict):
        return t
    if "__array__" in t:
        return sections[t["__array__"]]
    if "__scalar__" in t:
        return np.dtype(t["__scalar__"]).type(t["v"])
    if "__dtype__" in t:
        return np.dtype(t["__dtype__"]).type
    if "__lock__" in t:
        return threading.RLock() if t["__lock__"] == "rlock" else threading.Lock()
    if "__tuple__" in t:
        return tuple(_decode(x, sections) for x in t["__tuple__"])
    if "__dict__" in t:
        return {_decode(k, sections): _decode(x, sections) for k, x in t["__dict__"]}
    if "__object__" in t:
        cls = _class(t["__object__"])
        obj = cls.__new__(cls)
        obj.__dict__.update({k: _decode(x, sections) for k, x in t["state"].items()})
        return obj
    raise SnapshotError(f"unknown node in snapshot tree: {sorted(t)[:3]}")


def _class(path: str) -> type:
    module, _, qualname = path.partition(":")
    if not module.startswith(_PACKAGE):
        raise SnapshotError(f"snapshot names a class outside the match service: {path}")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, type):
        raise SnapshotError(f"snapshot names an unknown class: {path}")
    return found
