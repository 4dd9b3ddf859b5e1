"""The structure of a glTF 2.0 document, checked before :mod:`core.face.gltf` reads anything by it.

The type of every field the reader uses, indices that point at existing items, a node graph
that is a forest (no node its own ancestor, none with two parents) and finite transforms. A
file from a stranger fails here with a message naming the field, not later with a traceback.
"""
from __future__ import annotations

import math

import numpy as np

COMPONENT_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16,
                    5125: np.uint32, 5126: np.float32}
INDEX_TYPES = (5121, 5123, 5125)
TYPE_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


def check_document(document: dict) -> dict[int, int]:
    """Check the type of every field this reader uses, that indices point at existing items and
    that the nodes form a forest (no node its own ancestor, none with two parents), with finite
    transforms. Returns each child node's parent; raises ValueError naming the first problem."""
    lists = {key: _array(document, key) for key in
             ("scenes", "nodes", "meshes", "accessors", "bufferViews", "buffers", "animations", "skins")}
    for key in ("extensionsUsed", "extensionsRequired"):
        _strings(document, key, "")
    sizes = {key: len(items) for key, items in lists.items()}
    items = {key: [_item(item, f"{key}[{i}]") for i, item in enumerate(values)] for key, values in lists.items()}
    if "scene" in document:
        _index(document["scene"], sizes["scenes"], "scene")
    for i, scene in enumerate(items["scenes"]):
        for node in _array(scene, "nodes", f"scenes[{i}]"):
            _index(node, sizes["nodes"], f"scenes[{i}].nodes")
    parents = _check_nodes(items["nodes"], sizes)
    _check_meshes(items["meshes"], sizes)
    for i, skin in enumerate(items["skins"]):   # read to find a head bone (core.face.mesh)
        for joint in _array(skin, "joints", f"skins[{i}]"):
            _index(joint, sizes["nodes"], f"skins[{i}].joints")
    for i, accessor in enumerate(items["accessors"]):
        _check_accessor(accessor, sizes, f"accessors[{i}]")
    for i, view in enumerate(items["bufferViews"]):
        _check_view(view, sizes, f"bufferViews[{i}]")
    for i, buffer in enumerate(items["buffers"]):
        _optional(buffer, "uri", str, f"buffers[{i}]")
    for i, animation in enumerate(items["animations"]):
        _check_animation(animation, sizes, f"animations[{i}]")
    return parents


def _check_nodes(nodes: list[dict], sizes: dict[str, int]) -> dict[int, int]:
    """Each node's fields; the node graph a forest. Returns each child node's parent."""
    parents: dict[int, int] = {}
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        _optional(node, "name", str, where)
        if "mesh" in node:
            _index(node["mesh"], sizes["meshes"], f"{where}.mesh")
        if "skin" in node:
            _index(node["skin"], sizes["skins"], f"{where}.skin")
        for child in _array(node, "children", where):
            _index(child, sizes["nodes"], f"{where}.children")
            if child in parents or child == i:
                raise ValueError(f"node {child} has two parents or is its own child (a glTF node graph must be "
                                 "a tree)")
            parents[child] = i
        for key, size in (("matrix", 16), ("translation", 3), ("rotation", 4), ("scale", 3)):
            if key in node:
                _numbers(node[key], size, f"{where}.{key}")
    _check_forest(parents)
    return parents


def _check_meshes(meshes: list[dict], sizes: dict[str, int]) -> None:
    for i, mesh in enumerate(meshes):
        where = f"meshes[{i}]"
        _optional(mesh, "name", str, where)
        _strings(_optional(mesh, "extras", dict, where) or {}, "targetNames", f"{where}.extras")
        for k, primitive in enumerate(_array(mesh, "primitives", where)):
            here = f"{where}.primitives[{k}]"
            primitive = _item(primitive, here)
            _optional(primitive, "mode", int, here)
            _strings(_optional(primitive, "extras", dict, here) or {}, "targetNames", f"{here}.extras")
            attributes = _optional(primitive, "attributes", dict, here) or {}
            for name, accessor in attributes.items():
                _index(accessor, sizes["accessors"], f"{here}.attributes.{name}")
            if "indices" in primitive:
                _index(primitive["indices"], sizes["accessors"], f"{here}.indices")
            for t, target in enumerate(_array(primitive, "targets", here)):
                for name, accessor in _item(target, f"{here}.targets[{t}]").items():
                    _index(accessor, sizes["accessors"], f"{here}.targets[{t}].{name}")


def _check_accessor(accessor: dict, sizes: dict[str, int], where: str) -> None:
    if not _one_of(accessor.get("componentType"), COMPONENT_DTYPES) or not _one_of(accessor.get("type"), TYPE_WIDTHS):
        raise ValueError(f"{where} has an unknown componentType or type")
    _count(accessor.get("count"), f"{where}.count")
    _optional(accessor, "normalized", bool, where)
    if accessor.get("normalized") and accessor["componentType"] == 5126:
        raise ValueError(f"{where} is float and normalized")
    _offset_and_view(accessor, sizes["bufferViews"], where)
    sparse = _optional(accessor, "sparse", dict, where)
    if sparse is not None:
        _count(sparse.get("count"), f"{where}.sparse.count")
        indices = _item(sparse.get("indices"), f"{where}.sparse.indices")
        if not _one_of(indices.get("componentType"), INDEX_TYPES):
            raise ValueError(f"{where}.sparse.indices has an unknown componentType")
        for part in (indices, _item(sparse.get("values"), f"{where}.sparse.values")):
            if "bufferView" not in part:
                raise ValueError(f"{where}.sparse has no bufferView")
            _offset_and_view(part, sizes["bufferViews"], f"{where}.sparse")


def _check_view(view: dict, sizes: dict[str, int], where: str) -> None:
    _view_span(view, sizes["buffers"], where)
    if "byteStride" in view and not (4 <= _count(view["byteStride"], f"{where}.byteStride") <= 252):
        raise ValueError(f"{where}.byteStride must be 4 to 252")
    extensions = _optional(view, "extensions", dict, where) or {}
    compressed = _optional(extensions, "EXT_meshopt_compression", dict, where)
    if compressed is not None:
        here = f"{where}.EXT_meshopt_compression"
        _view_span(compressed, sizes["buffers"], here)
        _count(compressed.get("count"), f"{here}.count")
        _count(compressed.get("byteStride"), f"{here}.byteStride")
        _optional(compressed, "mode", str, here)
        _optional(compressed, "filter", str, here)


def _check_animation(animation: dict, sizes: dict[str, int], where: str) -> None:
    samplers = _array(animation, "samplers", where)
    for k, sampler in enumerate(samplers):
        sampler = _item(sampler, f"{where}.samplers[{k}]")
        for key in ("input", "output"):
            _index(sampler.get(key), sizes["accessors"], f"{where}.samplers[{k}].{key}")
        _optional(sampler, "interpolation", str, f"{where}.samplers[{k}]")
    for k, channel in enumerate(_array(animation, "channels", where)):
        channel = _item(channel, f"{where}.channels[{k}]")
        _index(channel.get("sampler"), len(samplers), f"{where}.channels[{k}].sampler")
        target = _item(channel.get("target"), f"{where}.channels[{k}].target")
        if "node" in target:
            _index(target["node"], sizes["nodes"], f"{where}.channels[{k}].target.node")
        _optional(target, "path", str, f"{where}.channels[{k}].target")


def _check_forest(parents: dict[int, int]) -> None:
    """Every chain of parents ends (one parent per node is checked already): O(nodes)."""
    done: set[int] = set()
    for start in parents:
        path, current = set(), start
        while current in parents and current not in done:
            if current in path:
                raise ValueError(f"node {current} is its own ancestor (a glTF node graph must be a tree)")
            path.add(current)
            current = parents[current]
        done |= path


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _one_of(value, options) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool) and value in options


def _item(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object, not {type(value).__name__}")
    return value


def _array(owner: dict, key: str, where: str = "") -> list:
    value = owner.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{_field(where, key)} must be a list, not {type(value).__name__}")
    return value


def _field(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _strings(owner: dict, key: str, where: str) -> None:
    if key in owner and not all(isinstance(v, str) for v in _array(owner, key, where)):
        raise ValueError(f"{_field(where, key)} must be a list of strings")


def _optional(owner: dict, key: str, kind: type, where: str):
    value = owner.get(key)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise ValueError(f"{where}.{key} must be {'an' if kind is int else 'a'} {kind.__name__}, "
                         f"not {type(value).__name__}")
    return value


def _index(value, size: int, where: str) -> int:
    if not _is_int(value) or not 0 <= value < size:
        raise ValueError(f"{where} must be an index below {size}, not {repr(value)[:20]}")
    return value


def _count(value, where: str) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError(f"{where} must be a whole number >= 0, not {repr(value)[:20]}")
    return value


def _numbers(value, size: int, where: str) -> None:
    if (not isinstance(value, list) or len(value) != size
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise ValueError(f"{where} must be {size} finite numbers")


def _offset_and_view(owner: dict, views: int, where: str) -> None:
    if "bufferView" in owner:
        _index(owner["bufferView"], views, f"{where}.bufferView")
    _count(owner.get("byteOffset", 0), f"{where}.byteOffset")


def _view_span(view: dict, buffers: int, where: str) -> None:
    _index(view.get("buffer"), buffers, f"{where}.buffer")
    _count(view.get("byteOffset", 0), f"{where}.byteOffset")
    _count(view.get("byteLength"), f"{where}.byteLength")
