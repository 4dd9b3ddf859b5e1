import json

import numpy as np
import pytest
import soundfile as sf

from core.arkit import ARKIT_NAMES, INDEX, NUM_BLENDSHAPES, livelink_name
from core.face.export import (LIVELINK_BLENDSHAPES, LIVELINK_HEADER, SUFFIXES, export_curves, import_curves,
                              import_motion, read_glb_weights, read_json, read_livelink_csv, read_npy)
from core.face.mesh import FaceMesh, load_face_mesh, load_reference_animation
from core.head_pose import HEAD_NAMES


def random_curves(frames=95, seed=0):
    return np.random.default_rng(seed).random((frames, NUM_BLENDSHAPES)).astype(np.float32)


def tiny_face():
    """A tetrahedron whose 52 morph targets each push one vertex: fast GLB tests."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.int32)
    deltas = np.zeros((NUM_BLENDSHAPES, 4, 3), dtype=np.float32)
    for i in range(NUM_BLENDSHAPES - 1):          # tongueOut left empty: an all-zero target
        deltas[i, i % 4, i % 3] = 0.01 * (i + 1)
    return FaceMesh(vertices=vertices, faces=faces, morph_deltas=deltas)


def write_csv(path, header, rows):
    path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")


def livelink_rows(curves, timecodes, columns=LIVELINK_BLENDSHAPES):
    """CSV rows as the app writes them, for the given timecodes and column order."""
    from core.arkit import canonical_name
    return [[tc, 61, *(f"{curves[k, INDEX[canonical_name(c)]]:.8f}" for c in columns), *[0] * 9]
            for k, tc in enumerate(timecodes)]


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("suffix", [".csv", ".json", ".npy"])
def test_round_trip_is_exact(tmp_path, suffix):
    curves = random_curves()
    path = export_curves(curves, tmp_path / f"take{suffix}")
    back, fps = import_curves(path)
    assert fps == 30
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, curves)


def test_glb_round_trip_and_morph_targets(tmp_path):
    curves = random_curves(40)
    face = tiny_face()
    path = export_curves(curves, tmp_path / "take.glb", face=face)
    back, head, fps = read_glb_weights(path)
    assert not head.any()                     # no head given: a still head
    assert fps == 30
    np.testing.assert_allclose(back, curves, atol=1e-6, rtol=0)
    # the morph targets read back (sparse accessors, an empty target included)
    reread = load_face_mesh(path)
    np.testing.assert_array_equal(reread.vertices, face.vertices)
    np.testing.assert_array_equal(reread.morph_deltas, face.morph_deltas)
    document = _glb_json(path)
    assert document["meshes"][0]["extras"]["targetNames"] == list(ARKIT_NAMES)
    sampler = document["animations"][0]["samplers"][0]
    assert sampler["interpolation"] == "LINEAR"
    assert document["animations"][0]["channels"][0]["target"] == {"node": 0, "path": "weights"}
    assert document["accessors"][sampler["output"]]["count"] == 40 * NUM_BLENDSHAPES


def test_glb_of_default_head_loads_in_trimesh(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    head = load_face_mesh()
    path = export_curves(random_curves(30), tmp_path / "head.glb")
    scene = trimesh.load(path, process=False)
    (mesh,) = scene.geometry.values()
    assert len(mesh.vertices) == len(head.vertices)
    assert len(mesh.faces) == len(head.faces)
    assert len(mesh.metadata["targetNames"]) == NUM_BLENDSHAPES
    assert len(_glb_json(path)["meshes"][0]["primitives"][0]["targets"]) == NUM_BLENDSHAPES


def test_reads_the_compressed_capture_inside_facecap_glb():
    from core.face.mesh import default_face_path
    curves, fps = import_curves(default_face_path())
    assert fps == 30
    np.testing.assert_allclose(curves, load_reference_animation(), atol=1e-4)


def test_audio_is_written_beside_the_curves(tmp_path):
    t = np.arange(16000) / 16000
    export_curves(random_curves(30), tmp_path / "take.csv", audio=0.3 * np.sin(2 * np.pi * 220 * t))
    samples, rate = sf.read(tmp_path / "take.wav")
    assert rate == 16000 and len(samples) == 16000


# ---------------------------------------------------------------- Live Link Face CSV specifics

def test_csv_layout_matches_the_app(tmp_path):
    export_curves(random_curves(61), tmp_path / "take.csv")
    lines = (tmp_path / "take.csv").read_text().splitlines()
    assert lines[0].split(",") == list(LIVELINK_HEADER)
    assert lines[0].startswith("Timecode,BlendShapeCount,EyeBlinkLeft,")
    assert ",JawForward,JawRight,JawLeft,JawOpen," in lines[0]
    assert lines[0].endswith(",TongueOut,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,"
                             "LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll")
    assert len(LIVELINK_HEADER) == 63
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows[:2] + rows[29:31] + rows[60:]] == [
        "00:00:00:00.000", "00:00:00:01.000", "00:00:00:29.000", "00:00:01:00.000", "00:00:02:00.000"]
    assert {r[1] for r in rows} == {"61"}
    assert all(r[-9:] == ["0"] * 9 for r in rows)


def test_csv_60fps_is_inferred_from_timecodes(tmp_path):
    curves = random_curves(90)
    export_curves(curves, tmp_path / "take.csv", fps=60)
    assert "00:00:00:59.000" in (tmp_path / "take.csv").read_text()
    back, _, fps = read_livelink_csv(tmp_path / "take.csv")
    assert fps == 60
    np.testing.assert_array_equal(back, curves)


def test_csv_columns_are_mapped_by_name_and_dropped_frames_filled(tmp_path):
    curves = random_curves(4)
    columns = list(reversed(LIVELINK_BLENDSHAPES))                   # any order
    header = ["Timecode", "BlendshapeCount", *columns, "HeadYaw", "HeadPitch", "HeadRoll",
              "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]
    rows = livelink_rows(curves, ["14:03:59:27.000", "14:03:59:28.000", "14:03:59:29.000", "14:04:00:01.000"],
                         columns)
    write_csv(tmp_path / "take.csv", header, rows)
    back, _, fps = read_livelink_csv(tmp_path / "take.csv")
    assert fps == 30 and back.shape == (5, NUM_BLENDSHAPES)       # frame 14:04:00:00 was dropped
    np.testing.assert_allclose(back[[0, 1, 2, 4]], curves, atol=1e-8)
    np.testing.assert_allclose(back[3], (curves[2] + curves[3]) / 2, atol=1e-7)


def test_csv_fractional_frame_numbers_are_placed_by_time(tmp_path):
    curves = np.zeros((3, NUM_BLENDSHAPES), dtype=np.float32)
    curves[:, INDEX["jawOpen"]] = [0.0, 0.5, 1.0]
    rows = livelink_rows(curves, ["00:00:00:00.000", "00:00:00:01.500", "00:00:00:02.000"])
    write_csv(tmp_path / "take.csv", LIVELINK_HEADER, rows)
    back = read_livelink_csv(tmp_path / "take.csv").curves
    np.testing.assert_allclose(back[:, INDEX["jawOpen"]], [0.0, 1 / 3, 1.0], atol=1e-6)


# ---------------------------------------------------------------- bad input

def test_csv_missing_column(tmp_path):
    columns = [c for c in LIVELINK_BLENDSHAPES if c != "JawOpen"]
    write_csv(tmp_path / "take.csv", ["Timecode", "BlendShapeCount", *columns],
              livelink_rows(random_curves(3), ["00:00:00:00.000", "00:00:00:01.000", "00:00:00:02.000"],
                            columns))
    with pytest.raises(ValueError, match="missing blendshape column jawOpen"):
        read_livelink_csv(tmp_path / "take.csv")


def test_csv_extra_unknown_column(tmp_path):
    header = [*LIVELINK_HEADER, "Sneeze"]
    rows = [r + ["0.5"] for r in livelink_rows(random_curves(2), ["00:00:00:00.000", "00:00:00:01.000"])]
    write_csv(tmp_path / "take.csv", header, rows)
    with pytest.raises(ValueError, match="unknown column Sneeze"):
        read_livelink_csv(tmp_path / "take.csv")


def test_csv_empty_and_header_only(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        read_livelink_csv(tmp_path / "empty.csv")
    write_csv(tmp_path / "header.csv", LIVELINK_HEADER, [])
    with pytest.raises(ValueError, match="no frames"):
        read_livelink_csv(tmp_path / "header.csv")
    (tmp_path / "other.csv").write_text("time,jawOpen\n0,0.5\n")
    with pytest.raises(ValueError, match="first columns must be Timecode, BlendShapeCount"):
        read_livelink_csv(tmp_path / "other.csv")


def test_csv_wrong_frame_rate(tmp_path):
    curves = random_curves(75)
    at_25fps = [f"00:00:{k // 25:02d}:{k % 25:02d}.000" for k in range(75)]   # 3 s numbered at 25 fps
    write_csv(tmp_path / "pal.csv", LIVELINK_HEADER, livelink_rows(curves, at_25fps))
    with pytest.raises(ValueError, match="not at 30 fps"):
        read_livelink_csv(tmp_path / "pal.csv")
    every_other = [f"00:00:00:{2 * k:02d}.000" for k in range(10)]            # one row per 2 frames
    write_csv(tmp_path / "sparse.csv", LIVELINK_HEADER, livelink_rows(curves, every_other))
    with pytest.raises(ValueError, match="2.00 frames apart"):
        read_livelink_csv(tmp_path / "sparse.csv")
    with pytest.raises(ValueError, match="30 or 60 fps, not 24"):
        read_livelink_csv(tmp_path / "sparse.csv", fps=24)
    with pytest.raises(ValueError, match="30 or 60 fps, not 25"):
        export_curves(curves, tmp_path / "out.csv", fps=25)
    assert not (tmp_path / "out.csv").exists()


def test_csv_bad_rows(tmp_path):
    rows = livelink_rows(random_curves(3), ["00:00:00:00.000", "00:00:00:02.000", "00:00:00:01.000"])
    write_csv(tmp_path / "back.csv", LIVELINK_HEADER, rows)
    with pytest.raises(ValueError, match="line 4: the timecode does not advance"):
        read_livelink_csv(tmp_path / "back.csv")
    rows = livelink_rows(random_curves(2), ["00:00:00:00.000", "1.5"])
    write_csv(tmp_path / "tc.csv", LIVELINK_HEADER, rows)
    with pytest.raises(ValueError, match="line 3: timecode '1.5'"):
        read_livelink_csv(tmp_path / "tc.csv")
    rows = livelink_rows(random_curves(2), ["00:00:00:00.000", "00:00:00:01.000"])
    rows[1][5] = "abc"
    write_csv(tmp_path / "nan.csv", LIVELINK_HEADER, rows)
    with pytest.raises(ValueError, match="line 3: a blendshape value is not a number"):
        read_livelink_csv(tmp_path / "nan.csv")


def test_beat_style_json_with_51_channels_and_times(tmp_path):
    names = sorted(n for n in ARKIT_NAMES if n != "tongueOut")
    weights = np.random.default_rng(1).random((6, 51))
    document = {"names": names, "frames": [{"time": k / 60, "weights": list(w)} for k, w in enumerate(weights)]}
    (tmp_path / "beat.json").write_text(json.dumps(document))
    curves, head, fps = read_json(tmp_path / "beat.json")
    assert head.shape == (6, 3) and not head.any()            # no head in BEAT files: a still one
    assert fps == 60
    np.testing.assert_allclose(curves[:, [INDEX[n] for n in names]], weights, atol=1e-7)
    assert not curves[:, INDEX["tongueOut"]].any()


def test_bad_json(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON file"):
        read_json(tmp_path / "bad.json")
    names = [n for n in ARKIT_NAMES if n != "jawOpen"]
    (tmp_path / "missing.json").write_text(json.dumps({"names": names, "fps": 30,
                                                       "frames": [{"weights": [0] * 51}]}))
    with pytest.raises(ValueError, match="missing blendshape column jawOpen"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "short.json").write_text(json.dumps({"names": list(ARKIT_NAMES), "fps": 30,
                                                     "frames": [{"weights": [0] * 3}]}))
    with pytest.raises(ValueError, match="needs 52 weights"):
        read_json(tmp_path / "short.json")
    (tmp_path / "norate.json").write_text(json.dumps({"names": list(ARKIT_NAMES),
                                                      "frames": [{"weights": [0] * 52}]}))
    with pytest.raises(ValueError, match="states no frame rate"):
        read_json(tmp_path / "norate.json")
    assert read_json(tmp_path / "norate.json", assume_fps=60).fps == 60


def test_bad_npy(tmp_path):
    np.save(tmp_path / "wide.npy", np.zeros((5, 51), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\[frames, 52\]"):
        read_npy(tmp_path / "wide.npy")
    with pytest.raises(ValueError, match="stores no frame rate"):
        export_curves(random_curves(4), tmp_path / "fast.npy", fps=60)


def test_glb_without_animation(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    trimesh.creation.box().export(tmp_path / "box.glb")
    with pytest.raises(ValueError, match="no morph-weight animation"):
        read_glb_weights(tmp_path / "box.glb")
    (tmp_path / "junk.glb").write_bytes(b"not a gltf file")
    with pytest.raises(ValueError, match="neither a GLB nor a glTF"):
        import_curves(tmp_path / "junk.glb")


@pytest.mark.parametrize("curves, message", [
    (np.zeros((0, 52)), "no frames"),
    (np.zeros((5, 51)), r"\[frames, 52\]"),
    (np.full((5, 52), np.nan), "NaN"),
    (np.array([["a"] * 52]), "expected numbers"),
])
def test_bad_curves_are_refused(tmp_path, curves, message):
    with pytest.raises(ValueError, match=message):
        export_curves(curves, tmp_path / "x.json")


def test_failed_export_leaves_no_partial_files(tmp_path):
    curves = random_curves(10)
    path = export_curves(curves, tmp_path / "take.json")
    before = path.read_bytes()
    with pytest.raises(ValueError):                                   # audio too short to use
        export_curves(random_curves(10, seed=2), path, audio=np.ones(100, dtype=np.float32))
    with pytest.raises(ValueError):
        export_curves(np.full((3, 52), np.inf), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.json"]


def test_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match=", ".join(SUFFIXES)):
        export_curves(random_curves(2), tmp_path / "take.fbx")
    with pytest.raises(ValueError, match="cannot import"):
        import_curves(tmp_path / "take.txt")


def test_livelink_names_are_the_arkit_set():
    assert sorted(n[0].lower() + n[1:] for n in LIVELINK_BLENDSHAPES) == sorted(ARKIT_NAMES)
    assert all(livelink_name(n[0].lower() + n[1:]) == n for n in LIVELINK_BLENDSHAPES)


def _glb_json(path):
    import struct
    data = path.read_bytes()
    length, kind = struct.unpack_from("<I4s", data, 12)
    assert data[:4] == b"glTF" and kind == b"JSON"
    return json.loads(data[20:20 + length])


@pytest.mark.parametrize("value", ["1e30", "1000000", "-50", "1.02"])
def test_csv_weights_outside_0_1_are_refused_by_row_and_column(tmp_path, value):
    rows = livelink_rows(random_curves(3), ["00:00:00:00.000", "00:00:00:01.000", "00:00:00:02.000"])
    rows[1][2 + 3] = value
    write_csv(tmp_path / "range.csv", LIVELINK_HEADER, rows)
    with pytest.raises(ValueError, match=f"line 3, column {LIVELINK_HEADER[5]}: the value .* outside 0-1"):
        read_livelink_csv(tmp_path / "range.csv")
    rows[1][5] = "1.005"                               # within the tolerance of captures
    write_csv(tmp_path / "range.csv", LIVELINK_HEADER, rows)
    assert read_livelink_csv(tmp_path / "range.csv")[0].shape == (3, NUM_BLENDSHAPES)


# ---------------------------------------------------------------- head motion

def random_head(frames, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (frames, 3)).astype(np.float32)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_head_round_trips_through_every_format(tmp_path, suffix):
    curves, head = random_curves(40), random_head(40)
    path = export_curves(curves, tmp_path / f"take{suffix}", head=head, face=tiny_face() if suffix == ".glb" else None)
    motion = import_motion(path)
    assert motion.head.dtype == np.float32 and motion.fps == 30
    np.testing.assert_allclose(motion.head, head, atol=1e-6, rtol=0)
    np.testing.assert_allclose(motion.curves, curves, atol=1e-6, rtol=0)
    assert import_curves(path)[0].shape == (40, NUM_BLENDSHAPES)        # the face alone, as before


def test_csv_head_columns_are_in_live_link_face_units(tmp_path):
    head = np.zeros((3, 3), np.float32)
    head[1] = [np.pi / 2, -np.pi / 4, np.pi / 18]                       # 90, -45 and 10 degrees
    export_curves(random_curves(3), tmp_path / "take.csv", head=head)
    rows = [line.split(",") for line in (tmp_path / "take.csv").read_text().splitlines()[1:]]
    yaw = LIVELINK_HEADER.index("HeadYaw")
    np.testing.assert_allclose([float(v) for v in rows[1][yaw:yaw + 3]], [0.5, -0.25, 1 / 18], atol=1e-7)
    assert rows[1][yaw + 3:] == ["0"] * 6 and rows[0][yaw:] == ["0"] * 9     # eyes still; frame 0 straight ahead


def test_json_and_npy_name_the_head_channels(tmp_path):
    head = random_head(5)
    document = json.loads(export_curves(random_curves(5), tmp_path / "take.json", head=head).read_text())
    assert document["head_names"] == list(HEAD_NAMES) and document["head_units"] == "radians"
    np.testing.assert_allclose([f["head"] for f in document["frames"]], head, atol=1e-7)
    array = np.load(export_curves(random_curves(5), tmp_path / "take.npy", head=head))
    assert array.shape == (5, NUM_BLENDSHAPES + 3)
    np.testing.assert_array_equal(array[:, NUM_BLENDSHAPES:], head)
    # the head's names map by name, in any order
    document["head_names"] = ["headRoll", "headYaw", "headPitch"]
    for frame in document["frames"]:
        yaw, pitch, roll = frame["head"]
        frame["head"] = [roll, yaw, pitch]
    (tmp_path / "shuffled.json").write_text(json.dumps(document))
    np.testing.assert_allclose(read_json(tmp_path / "shuffled.json").head, head, atol=1e-7)


def test_files_without_a_head_still_load_with_a_still_head(tmp_path):
    curves = random_curves(4)
    timecodes = [f"00:00:00:{k:02d}.000" for k in range(4)]
    write_csv(tmp_path / "old.csv", ["Timecode", "BlendShapeCount", *LIVELINK_BLENDSHAPES],
              [row[:-9] for row in livelink_rows(curves, timecodes)])
    (tmp_path / "old.json").write_text(json.dumps({"names": list(ARKIT_NAMES), "fps": 30,
                                                   "frames": [{"weights": [float(v) for v in r]} for r in curves]}))
    np.save(tmp_path / "old.npy", curves)
    for name in ("old.csv", "old.json", "old.npy"):
        motion = import_motion(tmp_path / name)
        assert motion.head.shape == (4, 3) and not motion.head.any(), name
        np.testing.assert_allclose(motion.curves, curves, atol=1e-7)


@pytest.mark.parametrize("head, message", [
    (np.full((6, 3), np.nan), "NaN"),
    (np.zeros((6, 2)), r"\[frames, 3\]"),
    (np.zeros((5, 3)), "5 frames of head angles for 6"),
    (np.full((6, 3), 45.0), "radians, not degrees"),
    (np.array([["a"] * 3] * 6), "expected numbers"),
])
def test_bad_head_angles_are_refused_before_anything_is_written(tmp_path, head, message):
    for suffix in SUFFIXES:
        with pytest.raises(ValueError, match=message):
            export_curves(random_curves(6), tmp_path / f"take{suffix}", head=head, face=tiny_face())
    assert not list(tmp_path.iterdir())


def test_bad_head_in_files_is_refused(tmp_path):
    rows = livelink_rows(random_curves(2), ["00:00:00:00.000", "00:00:00:01.000"])
    rows[1][LIVELINK_HEADER.index("HeadPitch")] = "nan"
    write_csv(tmp_path / "nan.csv", LIVELINK_HEADER, rows)
    with pytest.raises(ValueError, match="NaN or infinite head rotation values"):
        read_livelink_csv(tmp_path / "nan.csv")
    document = {"names": list(ARKIT_NAMES), "fps": 30, "head_names": list(HEAD_NAMES),
                "frames": [{"weights": [0] * 52, "head": [0, 0]}]}
    (tmp_path / "short.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="'head' list of 3 numbers"):
        read_json(tmp_path / "short.json")
    np.save(tmp_path / "odd.npy", np.zeros((3, 54), np.float32))
    with pytest.raises(ValueError, match=r"\[frames, 55\] curves and head"):
        read_npy(tmp_path / "odd.npy")


def test_glb_head_is_a_skinned_joint_with_a_rotation_track(tmp_path):
    from core.face.gltf_check import check_document
    from core.head_pose import quaternions
    face, head = load_face_mesh(), random_head(12)
    path = export_curves(random_curves(12), tmp_path / "take.glb", head=head)
    document = _glb_json(path)
    check_document(document)                                          # the project's own glTF checker
    skin = document["skins"][document["nodes"][0]["skin"]]
    joint = skin["joints"][1]
    assert document["nodes"][joint]["name"] == "head"
    np.testing.assert_allclose(document["nodes"][joint]["translation"], face.head_pivot, atol=1e-6)
    channel = document["animations"][0]["channels"][1]
    assert channel["target"] == {"node": joint, "path": "rotation"}
    output = document["animations"][0]["samplers"][channel["sampler"]]["output"]
    assert document["accessors"][output]["type"] == "VEC4" and document["accessors"][output]["count"] == 12
    reread = load_face_mesh(path)                                     # loads back: same mesh, same pivot
    np.testing.assert_allclose(reread.vertices, face.vertices, atol=1e-6)
    np.testing.assert_allclose(reread.head_pivot, face.head_pivot, atol=1e-6)
    assert reread.head_weights is None                                # the whole head turns
    _, back, _ = read_glb_weights(path)
    np.testing.assert_allclose(back, head, atol=1e-6)
    np.testing.assert_allclose(document["nodes"][joint].get("rotation", [0, 0, 0, 1]), [0, 0, 0, 1])   # rests straight
    from core.face.gltf import Gltf
    np.testing.assert_allclose(Gltf.open(path).accessor(output), quaternions(head), atol=1e-6)  # the track itself


def test_glb_of_a_body_keeps_the_body_still(tmp_path):
    """A rig whose head bone moves part of the mesh: the share survives the GLB and turns only that part."""
    from dataclasses import replace
    face = tiny_face()
    shares = np.array([0.0, 0.25, 1.0, 1.0], np.float32)              # vertex 0 is the body
    body = replace(face, head_weights=shares, head_pivot=np.array([0.0, 0.5, 0.0], np.float32))
    path = export_curves(random_curves(3), tmp_path / "body.glb", face=body, head=random_head(3))
    reread = load_face_mesh(path)
    np.testing.assert_allclose(reread.head_weights, shares, atol=1e-6)
    np.testing.assert_allclose(reread.head_pivot, [0.0, 0.5, 0.0], atol=1e-6)
    turned = reread.deform_sequence(np.zeros((1, NUM_BLENDSHAPES)), np.array([[0.0, 0.0, 0.5]]))[0]
    still = reread.deform_sequence(np.zeros((1, NUM_BLENDSHAPES)))[0]
    assert np.allclose(turned[0], still[0]) and not np.allclose(turned[2], still[2])
    # a full share keeps the distance to the pivot (a rotation); a quarter share moves less
    assert np.linalg.norm(turned[2] - [0, 0.5, 0]) == pytest.approx(np.linalg.norm(still[2] - [0, 0.5, 0]), abs=1e-6)
    assert np.linalg.norm(turned[1] - still[1]) < np.linalg.norm(turned[3] - still[3])


def test_glb_rotation_keys_interpolate_the_short_way(tmp_path):
    """Yaw through a half turn: q and -q are one rotation; neighbouring keys stay on one side."""
    from core.face.gltf import Gltf
    head = np.zeros((40, 3), np.float32)
    head[:, 0] = np.concatenate([np.linspace(2.0, 3.1, 20), np.linspace(-3.1, -2.0, 20)])   # across +-pi
    path = export_curves(random_curves(40), tmp_path / "turn.glb", head=head, face=tiny_face())
    document = _glb_json(path)
    output = document["animations"][0]["samplers"][document["animations"][0]["channels"][1]["sampler"]]["output"]
    keys = Gltf.open(path).accessor(output)
    assert (np.sum(keys[1:] * keys[:-1], axis=1) > 0).all()
    _, back, _ = read_glb_weights(path)
    np.testing.assert_allclose(back, head, atol=1e-5)
