"""The ARKit face rig: facecap.glb from openfacefx, custom avatars, the reference capture."""
import numpy as np
import pytest

from core.arkit import ARKIT_NAMES, INDEX, NUM_BLENDSHAPES
from core.face.mesh import FaceMesh, load_face_mesh, load_reference_animation
from tests.helpers import QUAD, QUAD_FACES, write_gltf

@pytest.fixture(scope="module")
def facecap() -> FaceMesh:
    return load_face_mesh()


def test_facecap_has_all_52_arkit_targets(facecap):
    assert facecap.missing == ()  # eyeBlink_L, mouthSmile_R ... all map to ARKit names
    assert facecap.morph_deltas.shape == (NUM_BLENDSHAPES, len(facecap.vertices), 3)
    assert facecap.vertices.dtype == np.float32 and facecap.faces.dtype == np.int32
    assert facecap.faces.min() >= 0 and facecap.faces.max() < len(facecap.vertices)
    moving = [name for name in ARKIT_NAMES if np.abs(facecap.morph_deltas[INDEX[name]]).max() > 0]
    assert len(moving) == 51 and "tongueOut" not in moving  # facecap's tongueOut target is empty
    head = next(p for p in facecap.parts if p.name == "head")
    assert head.vertices.stop - head.vertices.start == 2694
    assert head.faces.stop - head.faces.start == 5032
    assert {p.name for p in facecap.parts} >= {"eyeLeft", "eyeRight", "teeth"}


def test_zero_weights_give_the_neutral_face(facecap):
    np.testing.assert_array_equal(facecap.deform(np.zeros(NUM_BLENDSHAPES)), facecap.vertices)


def test_jaw_open_moves_the_lower_face_down(facecap):
    weights = np.zeros(NUM_BLENDSHAPES, np.float32)
    weights[INDEX["jawOpen"]] = 1.0
    offsets = facecap.deform(weights) - facecap.vertices
    moved = np.linalg.norm(offsets, axis=1) > 0.05 * np.ptp(facecap.vertices[:, 1])
    assert moved.sum() > 50
    nose_tip = facecap.vertices[np.argmax(facecap.vertices[:, 2])]  # the face looks down +Z
    assert np.all(facecap.vertices[moved, 1] < nose_tip[1])
    assert offsets[moved, 1].mean() < 0


def test_left_blink_closes_the_subjects_left_eye(facecap):
    """ARKit's Left is the subject's left: +X on a glTF face looking down +Z."""
    offsets = facecap.morph_deltas[INDEX["eyeBlinkLeft"]]
    moved = np.linalg.norm(offsets, axis=1) > 0.5 * np.linalg.norm(offsets, axis=1).max()
    assert np.all(facecap.vertices[moved, 0] > 0) and offsets[moved, 1].mean() < 0


def test_deform_sequence_is_linear_and_batched(facecap):
    weights = np.random.default_rng(0).uniform(0, 1, (3, NUM_BLENDSHAPES)).astype(np.float32)
    frames = facecap.deform_sequence(weights)
    assert frames.shape == (3, len(facecap.vertices), 3)
    np.testing.assert_allclose(frames[1], facecap.deform(weights[1]), atol=1e-5)
    halfway = facecap.deform(weights[0] / 2) - facecap.vertices
    np.testing.assert_allclose(2 * halfway, frames[0] - facecap.vertices, atol=1e-5)


@pytest.mark.parametrize("bad", [np.zeros(51), np.zeros((2, 3, NUM_BLENDSHAPES))])
def test_deform_rejects_wrong_shapes(facecap, bad):
    with pytest.raises(ValueError, match="weights"):
        facecap.deform_sequence(bad) if bad.ndim == 3 else facecap.deform(bad)


def test_loaded_mesh_is_cached_and_read_only(facecap):
    assert load_face_mesh() is facecap
    with pytest.raises(ValueError):
        facecap.vertices[0, 0] = 1.0


def test_reference_animation_is_the_30fps_capture():
    capture = load_reference_animation()
    assert capture.dtype == np.float32 and capture.shape[1] == NUM_BLENDSHAPES
    assert 11.0 <= len(capture) / 30 <= 11.3
    assert capture.min() >= 0 and capture.max() <= 1
    blink = capture[:, INDEX["eyeBlinkLeft"]]
    assert blink.max() > 0.5 and blink.min() < 0.2  # the capture blinks
    assert np.abs(np.diff(capture, axis=0)).max() < 1  # a smooth 30 fps curve, not noise


@pytest.mark.parametrize("name,sparse", [("avatar.glb", False), ("avatar.glb", True), ("avatar.gltf", False)])
def test_custom_avatar_with_two_arkit_targets(tmp_path, name, sparse):
    jaw = np.zeros_like(QUAD)
    jaw[:2, 1] = -0.5  # the bottom edge drops
    blink = np.zeros_like(QUAD)
    blink[3, 1] = -0.25
    path = write_gltf(tmp_path / name, {"jawOpen": jaw, "eyeBlink_L": blink, "notAShape": np.ones_like(QUAD)},
                      sparse=sparse, translation=(0.0, 10.0, 0.0), scale=2.0)
    mesh = load_face_mesh(path)
    assert len(mesh.missing) == 50 and "jawOpen" not in mesh.missing and "eyeBlinkLeft" not in mesh.missing
    np.testing.assert_allclose(mesh.vertices, QUAD * 2 + [0, 10, 0])  # node transform baked in
    np.testing.assert_allclose(mesh.morph_deltas[INDEX["jawOpen"]], jaw * 2)
    np.testing.assert_allclose(mesh.morph_deltas[INDEX["eyeBlinkLeft"]], blink * 2)
    others = np.delete(mesh.morph_deltas, [INDEX["jawOpen"], INDEX["eyeBlinkLeft"]], axis=0)
    assert not others.any()
    np.testing.assert_array_equal(mesh.faces, QUAD_FACES)


def test_glb_without_morph_targets_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="ARKit"):
        load_face_mesh(write_gltf(tmp_path / "static.glb"))


def test_glb_with_only_foreign_targets_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="ARKit"):
        load_face_mesh(write_gltf(tmp_path / "visemes.glb", {"viseme_aa": np.ones_like(QUAD)}))


def test_bad_files_raise_value_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_face_mesh(tmp_path / "nope.glb")
    junk = tmp_path / "junk.glb"
    junk.write_bytes(b"\x00\x01not a gltf")
    with pytest.raises(ValueError, match="glTF"):
        load_face_mesh(junk)
    truncated = write_gltf(tmp_path / "truncated.glb", {"jawOpen": np.ones_like(QUAD)})
    truncated.write_bytes(truncated.read_bytes()[:-40])
    with pytest.raises(ValueError, match="past the end"):
        load_face_mesh(truncated)


def test_reference_animation_needs_an_animation(tmp_path):
    path = write_gltf(tmp_path / "still.glb", {"jawOpen": np.ones_like(QUAD)})
    with pytest.raises(ValueError, match="animation"):
        load_reference_animation(path)


# ---------------------------------------------------------------- head motion

def test_facecap_turns_whole_about_a_point_at_the_top_of_its_neck(facecap):
    assert facecap.head_weights is None                              # no head bone: eyes and teeth turn too
    x, y, z = facecap.head_pivot
    low, high = facecap.vertices.min(axis=0), facecap.vertices.max(axis=0)
    teeth = facecap.vertices[next(p for p in facecap.parts if p.name == "teeth").vertices]
    assert abs(x - (low[0] + high[0]) / 2) < 0.05 * (high[0] - low[0])   # centred left to right
    assert teeth[:, 1].min() - 0.3 < y < teeth[:, 1].max()               # about level with the mouth
    assert low[2] < z < teeth[:, 2].min()                                # behind the face, inside the head
    turned = facecap.deform(np.zeros(NUM_BLENDSHAPES), head=[0.3, -0.1, 0.2])
    np.testing.assert_allclose(np.linalg.norm(turned - facecap.head_pivot, axis=1),
                               np.linalg.norm(facecap.vertices - facecap.head_pivot, axis=1), atol=1e-5)
    np.testing.assert_array_equal(facecap.deform(np.zeros(NUM_BLENDSHAPES), head=[0, 0, 0]), facecap.vertices)


def _rig(names: list[str], parents: dict[int, int], joints: list[int]):
    """A glTF document of bare nodes (names, parent links, one skin) for the head-bone rule."""
    from pathlib import Path

    from core.face.gltf import Gltf
    nodes = [{"name": n} if n else {} for n in names]
    for child, parent in parents.items():
        nodes[parent].setdefault("children", []).append(child)
    return Gltf(Path("rig.gltf"), {"asset": {"version": "2.0"}, "nodes": nodes, "skins": [{"joints": joints}]}, [])


def test_the_head_bone_is_the_joint_nearest_the_root_named_head_else_neck():
    from core.face.mesh import head_joint
    names = ["Armature", "mixamorig:Hips", "mixamorig:Neck", "mixamorig:Head", "mixamorig:HeadTop_End", "Forehead"]
    chain = {1: 0, 2: 1, 3: 2, 4: 3, 5: 3}
    assert head_joint(_rig(names, chain, [1, 2, 3, 4, 5])) == 3              # Head, not HeadTop_End or Forehead
    assert head_joint(_rig(names, chain, [1, 2, 5])) == 2                    # no head joint: the neck
    assert head_joint(_rig(["Root", "CC_Base_Head", "head_jnt"], {1: 0, 2: 1}, [0, 2])) == 2
    assert head_joint(_rig(["Root", "Wolf3D_Head"], {1: 0}, [0])) is None    # a mesh named head is not a bone


def test_a_skinned_avatar_turns_its_head_bone_and_keeps_its_body(tmp_path):
    """Skin weights on the head bone (and bones below it) are each vertex's share of the turn."""
    from core.face.export import export_curves
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    deltas = np.zeros((NUM_BLENDSHAPES, 4, 3), np.float32)
    deltas[INDEX["jawOpen"], 3, 1] = -0.1
    body = FaceMesh(vertices, np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32), deltas,
                    head_weights=np.array([0, 0.5, 1, 1], np.float32), head_pivot=np.array([0, 0.5, 0], np.float32))
    reread = load_face_mesh(export_curves(np.zeros((2, NUM_BLENDSHAPES)), tmp_path / "body.glb", face=body))
    np.testing.assert_allclose(reread.head_weights, [0, 0.5, 1, 1], atol=1e-6)
    np.testing.assert_allclose(reread.head_pivot, [0, 0.5, 0], atol=1e-6)
    with pytest.raises(ValueError, match="head_weights"):
        FaceMesh(vertices, body.faces, deltas, head_weights=np.full(4, 2.0, np.float32))
    with pytest.raises(ValueError, match="head_pivot"):
        FaceMesh(vertices, body.faces, deltas, head_pivot=np.array([np.nan, 0, 0], np.float32))


def test_meshes_hanging_under_the_head_bone_turn_and_the_rest_stays(tmp_path):
    import json
    path = write_gltf(tmp_path / "rig.gltf", {"jawOpen": np.tile([0.0, -0.1, 0.0], (len(QUAD), 1))})
    document = json.loads(path.read_text())
    document["nodes"] = [{"name": "face", "mesh": 0},                                  # hangs under the head bone
                         {"name": "Armature", "children": [2]},
                         {"name": "Head", "translation": [0.0, 2.0, 0.0], "children": [0]},
                         {"name": "body", "mesh": 0, "translation": [0.0, -3.0, 0.0]}]
    document["scenes"] = [{"nodes": [1, 3]}]
    document["skins"] = [{"joints": [1, 2]}]
    path.write_text(json.dumps(document))
    mesh = load_face_mesh(path)
    np.testing.assert_array_equal(mesh.head_weights, [1.0] * len(QUAD) + [0.0] * len(QUAD))
    np.testing.assert_allclose(mesh.head_pivot, [0.0, 2.0, 0.0])                     # the bone's origin
    turned = mesh.deform(np.zeros(NUM_BLENDSHAPES), head=[0.4, 0.0, 0.0])
    np.testing.assert_array_equal(turned[len(QUAD):], mesh.vertices[len(QUAD):])      # the body stays
    assert not np.allclose(turned[:len(QUAD)], mesh.vertices[:len(QUAD)])
