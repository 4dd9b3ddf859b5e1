"""Hostile and careless avatar uploads: small generated GLB/glTF files, each with what must happen.

Every kind of damage a glTF reader meets, by category: a node graph that is not a tree (a node
its own child, cycles with or without names, two parents, a node reached twice), sizes that the
header claims and the data does not hold or that would fill memory (instancing, accessors with
no data, meshopt views, sparse parts, index counts, the JSON itself), wrong JSON types in every
field the reader uses, and NaN or infinity in transforms and positions. Each file is a few KB
(the largest, the deep chains, a few MB) and is refused with a plain message or read; nothing may
take more than seconds or hundreds of MB. ``python -m experiments.robustness`` times them
through :func:`demo.avatars.read_avatar` (docs/RESULTS.md); the tests upload them to the app.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from core.face.glb import pack_glb

FLOAT, UINT16, UINT32 = 5126, 5123, 5125


@dataclass
class AvatarCase:
    name: str
    path: Path
    expect: str        # "ok", or a fragment of the message the upload is refused with (a regex)


def base_avatar(vertices: int = 4) -> tuple[dict, bytearray]:
    """A valid head: a strip of ``vertices`` points (a quad for 4) with a jawOpen target; (document, binary)."""
    columns = max(2, vertices // 2)
    grid = np.array([[x, y, 0.0] for y in (0, 1) for x in range(columns)], np.float32)[:vertices]
    triangles = np.array([[x, x + 1, columns + x] for x in range(columns - 1)]
                         + [[x + 1, columns + x + 1, columns + x] for x in range(columns - 1)], np.uint32)
    triangles = triangles[(triangles < vertices).all(axis=1)]
    jaw = np.zeros_like(grid)
    jaw[:, 1] = -0.5 * (grid[:, 1] == 0)
    blob, views = bytearray(), []
    for array in (grid, triangles.ravel(), jaw):
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": array.nbytes})
        blob.extend(array.tobytes())
    document = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "face", "mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "targets": [{"POSITION": 2}]}],
                    "extras": {"targetNames": ["jawOpen"]}}],
        "accessors": [{"bufferView": 0, "componentType": FLOAT, "type": "VEC3", "count": len(grid)},
                      {"bufferView": 1, "componentType": UINT32, "type": "SCALAR", "count": triangles.size},
                      {"bufferView": 2, "componentType": FLOAT, "type": "VEC3", "count": len(grid)}],
        "bufferViews": views, "buffers": [{"byteLength": len(blob)}]}
    return document, blob


def _nodes(*nodes: dict, roots=(0,)) -> Callable[[dict], None]:
    def change(doc):
        doc["nodes"] = [dict(n) for n in nodes]
        doc["scenes"] = [{"nodes": list(roots)}]
    return change


def _set(path: str, value) -> Callable[[dict], None]:
    """Set a field given as "nodes.0.mesh" (list items by number)."""
    def change(doc):
        *route, last = path.split(".")
        owner = doc
        for key in route:
            owner = owner[int(key)] if isinstance(owner, list) else owner[key]
        owner[int(last) if isinstance(owner, list) else last] = value
    return change


def _chain(length: int, mesh_at_each: bool) -> Callable[[dict], None]:
    """``length`` nameless nodes, each the only child of the one before; the mesh on every node or the last."""
    def change(doc):
        doc["nodes"] = [{"children": [i + 1]} if i < length - 1 else {} for i in range(length)]
        for i, node in enumerate(doc["nodes"]):
            if mesh_at_each or i == length - 1:
                node["mesh"] = 0
        doc["scenes"] = [{"nodes": [0]}]
    return change


def _without_data(accessor: int, count: int) -> Callable[[dict], None]:
    def change(doc):
        doc["accessors"][accessor] = {"componentType": FLOAT, "type": "VEC3", "count": count}
    return change


def _meshopt_rows(rows: int) -> Callable[[dict], None]:
    """Positions in an EXT_meshopt_compression view that claims ``rows`` rows of 12 bytes."""
    def change(doc):
        doc["extensionsUsed"] = ["EXT_meshopt_compression"]
        doc["bufferViews"][0]["extensions"] = {"EXT_meshopt_compression": {
            "buffer": 0, "byteOffset": 0, "byteLength": 48, "byteStride": 12, "count": rows, "mode": "ATTRIBUTES"}}
        doc["bufferViews"][0]["byteLength"] = 12 * rows
    return change


def _sparse(count: int, index: int) -> Callable[[dict], None]:
    """The jaw target as a sparse accessor replacing ``count`` elements, the first at ``index``."""
    def change(doc):
        doc["accessors"][2] = {"componentType": FLOAT, "type": "VEC3", "count": 4, "sparse": {
            "count": count, "indices": {"bufferView": 3, "componentType": UINT32},
            "values": {"bufferView": 2}}}
        doc["bufferViews"].append({"buffer": 0, "byteOffset": 0, "byteLength": 4})
        doc["__indices__"] = index
    return change


def _extra(value) -> Callable[[dict], None]:
    return _set("extras", value)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


NAN, INF = float("nan"), float("inf")
BASE_VERTICES = {"19,999 nameless mesh nodes in a chain": 3,    # 19,999 x 3: just under the vertex limit
                 "300 nameless mesh nodes in a chain": 3}

# (name, change to the valid document, expected outcome). Python's json writes NaN and Infinity
# as the bare words NaN / Infinity, which Python's own parser (and so the app's) accepts.
DOCUMENT_CASES: list[tuple[str, Callable[[dict], None], str]] = [
    ("valid head (control)", lambda doc: None, "ok"),
    # the node graph
    ("node that is its own child", _set("nodes.0.children", [0]), "own child"),
    ("nameless cycle above the mesh node", _nodes({"children": [1]}, {"children": [0, 2]}, {"mesh": 0}),
     "own ancestor|two parents"),
    ("cycle of named nodes outside the scene", _nodes({"name": "face", "mesh": 0}, {"name": "a", "children": [2]},
                                                      {"name": "b", "children": [1]}), "own ancestor"),
    ("node with two parents", _nodes({"children": [1, 2]}, {"children": [3]}, {"children": [3]}, {"mesh": 0}),
     "two parents"),
    ("scene lists a node twice", _nodes({"name": "face", "mesh": 0}, roots=(0, 0)), "reached twice"),
    ("scene root that is also a child", _nodes({"children": [1]}, {"mesh": 0}, roots=(0, 1)), "reached twice"),
    ("no scene, every node in a cycle", lambda doc: (doc.pop("scenes"), doc.pop("scene"),
                                                     _nodes({"children": [1], "mesh": 0}, {"children": [0]})(doc),
                                                     doc.pop("scenes")), "own ancestor"),
    ("19,999 nameless mesh nodes in a chain", _chain(19_999, True), "19,999 nodes; at most"),
    ("300 nameless mesh nodes in a chain", _chain(300, True), "300 mesh pieces"),
    ("10,000 nameless nodes above the mesh", _chain(10_000, False), "ok"),
    ("50,000 nameless nodes above the mesh", _chain(50_000, False), "50,000 nodes; at most"),
    # sizes claimed by the header
    ("POSITION with no data, count 1,500,000", _without_data(0, 1_500_000), "1,500,000 vertices"),
    ("POSITION count 10^30", _set("accessors.0.count", 10 ** 30), "vertices"),
    ("morph target with no data, count 1,500,000", _without_data(2, 1_500_000), "moves 1,500,000 vertices"),
    ("index accessor count 10^9", _set("accessors.1.count", 10 ** 9), "MB of decoded data"),
    ("meshopt view of 3e8 rows", _meshopt_rows(300_000_000), "MB of decoded data"),
    ("buffer view past the end of the buffer", _set("bufferViews.0.byteLength", 10 ** 12), "past the end"),
    ("accessor past the end of its view", _set("accessors.0.byteOffset", 40), "past the end"),
    ("sparse part of 10^9 elements", _sparse(10 ** 9, 0), "replaces"),
    ("sparse index past the accessor", _sparse(1, 7), "sparse indices"),
    ("indices past the vertices", lambda doc: doc.__setitem__("__triangles__", 99), "not triples"),
    ("1,200,000 JSON items", _extra([0] * 1_200_000), "JSON part"),
    ("JSON nested 100,000 deep", lambda doc: doc.__setitem__("__deep__", 100_000), "nested too deeply"),
    # JSON types, field by field
    ("document is a list", lambda doc: doc.__setitem__("__list__", True), "not a glTF 2.0"),
    ("no asset", lambda doc: doc.pop("asset"), "not a glTF 2.0"),
    ("extensionsUsed is a string", _set("extensionsUsed", "EXT_meshopt_compression"), "extensionsUsed"),
    ("extensionsRequired holds a number", _set("extensionsRequired", [1]), "extensionsRequired"),
    ("nodes is an object", _set("nodes", {"0": {"mesh": 0}}), "nodes must be a list"),
    ("node is a string", _set("nodes.0", "face"), "nodes\\[0\\] must be a JSON object"),
    ("node name is a number", _set("nodes.0.name", 7), "name must be a str"),
    ("node mesh is a string", _set("nodes.0.mesh", "0"), "mesh must be an index"),
    ("node mesh is -1", _set("nodes.0.mesh", -1), "mesh must be an index"),
    ("node mesh is true", _set("nodes.0.mesh", True), "mesh must be an index"),
    ("node mesh out of range", _set("nodes.0.mesh", 7), "mesh must be an index"),
    ("children is a number", _set("nodes.0.children", 1), "children must be a list"),
    ("child out of range", _set("nodes.0.children", [5]), "children must be an index"),
    ("matrix of 15 numbers", _set("nodes.0.matrix", [1.0] * 15), "matrix must be 16"),
    ("matrix of strings", _set("nodes.0.matrix", ["1"] * 16), "matrix must be 16"),
    ("scene index out of range", _set("scene", 3), "scene must be an index"),
    ("scene nodes is a string", _set("scenes.0.nodes", "0"), "nodes must be a list"),
    ("meshes is a number", _set("meshes", 1), "meshes must be a list"),
    ("primitives is a string", _set("meshes.0.primitives", "x"), "primitives must be a list"),
    ("attributes is a list", _set("meshes.0.primitives.0.attributes", [0]), "attributes must be a dict"),
    ("POSITION is a string", _set("meshes.0.primitives.0.attributes.POSITION", "0"), "POSITION must be an index"),
    ("indices is a float", _set("meshes.0.primitives.0.indices", 1.0), "indices must be an index"),
    ("targets hold a number", _set("meshes.0.primitives.0.targets", [3]), "targets\\[0\\] must be a JSON object"),
    ("targetNames hold a number", _set("meshes.0.extras.targetNames", [5]), "targetNames must be a list of str"),
    ("extras is a list", _set("meshes.0.extras", [1]), "extras must be a dict"),
    ("mode is a string", _set("meshes.0.primitives.0.mode", "TRIANGLES"), "mode must be an int"),
    ("accessor count is a string", _set("accessors.0.count", "4"), "count must be a whole number"),
    ("accessor count is negative", _set("accessors.0.count", -4), "count must be a whole number"),
    ("accessor count is 4.5", _set("accessors.0.count", 4.5), "count must be a whole number"),
    ("componentType is a list", _set("accessors.0.componentType", [FLOAT]), "unknown componentType"),
    ("componentType unknown", _set("accessors.0.componentType", 9999), "unknown componentType"),
    ("type is VEC7", _set("accessors.0.type", "VEC7"), "unknown componentType or type"),
    ("normalized float accessor", _set("accessors.0.normalized", True), "float and normalized"),
    ("normalized is a string", _set("accessors.0.normalized", "yes"), "normalized must be a bool"),
    ("accessor byteOffset is negative", _set("accessors.0.byteOffset", -12), "byteOffset must be"),
    ("bufferView is a string", _set("accessors.0.bufferView", "0"), "bufferView must be an index"),
    ("byteStride of 2", _set("bufferViews.0.byteStride", 2), "byteStride must be 4 to 252"),
    ("byteLength missing", lambda doc: doc["bufferViews"][0].pop("byteLength"), "byteLength must be"),
    ("buffer index is a string", _set("bufferViews.0.buffer", "0"), "buffer must be an index"),
    ("meshopt count is a string", lambda doc: (_meshopt_rows(4)(doc),
                                               _set("bufferViews.0.extensions.EXT_meshopt_compression.count", "4")(doc)),
     "count must be a whole number"),
    ("extensions is a list", _set("bufferViews.0.extensions", []), "extensions must be a dict"),
    ("buffer uri is a number", _set("buffers.0.uri", 7), "uri must be a str"),
    ("animation sampler out of range", _set("animations", [{"channels": [{"sampler": 3, "target": {"node": 0}}],
                                                            "samplers": []}]), "sampler must be an index"),
    # NaN and infinity
    ("NaN in the node matrix", _set("nodes.0.matrix", [NAN] + [0.0] * 15), "matrix must be 16 finite"),
    ("infinite translation", _set("nodes.0.translation", [0.0, INF, 0.0]), "translation must be 3 finite"),
    ("NaN rotation", _set("nodes.0.rotation", [0.0, 0.0, 0.0, NAN]), "rotation must be 4 finite"),
    ("-infinite scale", _set("nodes.0.scale", [1.0, -INF, 1.0]), "scale must be 3 finite"),
    ("scales that overflow together", _nodes({"scale": [1e300] * 3, "children": [1]}, {"scale": [1e300] * 3, "mesh": 0}),
     "overflows"),
    ("scale that overflows float32", _set("nodes.0.scale", [1e39] * 3), "not finite"),
    ("NaN vertex position", lambda doc: doc.__setitem__("__positions__", NAN), "not finite"),
    ("infinite morph target", lambda doc: doc.__setitem__("__jaw__", INF), "not finite"),
]


def _write(path: Path, document, blob: bytearray) -> Path:
    if path.suffix == ".gltf":
        uri = "data:application/octet-stream;base64," + base64.b64encode(bytes(blob)).decode()
        document["buffers"][0]["uri"] = uri
        path.write_text(json.dumps(document))
    else:
        path.write_bytes(pack_glb(document, bytes(blob)))
    return path


def _apply_data_changes(document: dict, blob: bytearray) -> object:
    """The changes to the binary data and the raw JSON that a document change cannot express."""
    floats = np.frombuffer(blob, np.float32, count=12, offset=0).copy()
    if "__positions__" in document:
        floats[4] = document.pop("__positions__")
        blob[0:48] = floats.tobytes()
    if "__jaw__" in document:
        jaw = np.frombuffer(blob, np.float32, count=12, offset=72).copy()
        jaw[1] = document.pop("__jaw__")
        blob[72:120] = jaw.tobytes()
    if "__triangles__" in document:
        blob[48:52] = np.uint32(document.pop("__triangles__")).tobytes()
    if "__indices__" in document:
        blob[0:4] = np.uint32(document.pop("__indices__")).tobytes()
    if document.pop("__list__", False):
        return [document]
    return document


def make_avatar_cases(folder: str | Path) -> list[AvatarCase]:
    """Write every case into ``folder`` (GLB, plus a few as .gltf); returns them in order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for k, (name, change, expect) in enumerate(DOCUMENT_CASES):
        document, blob = base_avatar(BASE_VERTICES.get(name, 4))
        change(document)
        deep = document.pop("__deep__", None)
        document = _apply_data_changes(document, blob)
        path = folder / f"case{k:02d}.glb"
        if deep:                                   # JSON that json.dumps cannot write
            text = json.dumps(document)[:-1] + ', "extras": ' + _deep(deep) + "}"
            path.write_bytes(pack_glb(text.encode(), bytes(blob)))
        else:
            _write(path, document, blob)
        cases.append(AvatarCase(name, path, expect))
    # The header itself, and the data URIs of a .gltf.
    document, blob = base_avatar()
    glb = bytearray(_write(folder / "truncated.glb", document, blob).read_bytes())
    glb[12:16] = (10 ** 6).to_bytes(4, "little")
    (folder / "truncated.glb").write_bytes(bytes(glb))
    cases.append(AvatarCase("GLB whose JSON chunk is longer than the file", folder / "truncated.glb", "truncated"))
    cases.append(AvatarCase("valid .gltf (control)", _write(folder / "valid.gltf", *base_avatar()), "ok"))
    for name, uri, expect in (("data URI without a comma", "data:application/octet-stream;base64", "not base64 data"),
                              ("data URI not in base64", "data:application/octet-stream,AAAA", "not base64 data"),
                              ("damaged base64", "data:application/octet-stream;base64,A", "base64 data is damaged")):
        document, _ = base_avatar()
        document["buffers"][0]["uri"] = uri
        path = folder / f"uri{len(cases)}.gltf"
        path.write_text(json.dumps(document))
        cases.append(AvatarCase(name, path, expect))
    document, blob = base_avatar(1024)
    document["nodes"] = [{"children": list(range(1, 1501))}] + [{"mesh": 0}] * 1500
    cases.append(AvatarCase("1,024-vertex mesh instanced 1,500 times", _write(folder / "instanced.glb", document, blob),
                            "1,536,000 vertices \\(counting each of its 1,500 mesh instances\\)"))
    return cases
