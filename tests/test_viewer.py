"""The browser viewer's data (packed heads, compact curves) and users' own avatars, without a browser."""
from __future__ import annotations

import base64
import struct

import numpy as np
import pytest
import soundfile as sf

from core.arkit import ARKIT_NAMES, INDEX, NUM_BLENDSHAPES
from core.face.mesh import load_face_mesh
from core.face.materials import hidden_at_rest
from demo import avatars, viewer
from tests.helpers import QUAD, sphere_avatar, write_gltf


def unpack(data: bytes, header: dict, name: str) -> np.ndarray:
    """One array of a packed mesh file, as the browser reads it."""
    entry = header["arrays"][name]
    start = 8 + struct.unpack_from("<I", data, 4)[0] + entry["offset"]
    return np.frombuffer(data, dtype="<" + entry["type"], count=entry["length"], offset=start)


def test_curves_travel_as_uint16_within_one_step():
    rng = np.random.default_rng(0)
    curves = rng.random((240, NUM_BLENDSHAPES)).astype(np.float32)
    curves[0, 0], curves[1, 1] = -0.2, 1.3                       # clipped to ARKit's [0, 1]
    text = viewer.encode_curves(curves)
    assert len(base64.b64decode(text)) == 240 * NUM_BLENDSHAPES * 2      # 2 bytes per value
    back = viewer.decode_curves(text)
    np.testing.assert_allclose(back, np.clip(curves, 0, 1), atol=0.5 / viewer.CURVE_SCALE + 1e-7)
    with pytest.raises(ValueError, match="52"):
        viewer.encode_curves(curves[:, :51])


def test_packed_facecap_keeps_every_target_and_paints_the_mouth_inside():
    mesh = load_face_mesh()
    data = viewer.pack_mesh(mesh)
    header = viewer.read_mesh_header(data)
    assert header["vertices"] == len(mesh.vertices) and header["triangles"] == len(mesh.faces)
    assert [c["name"] for c in header["channels"]] == [n for n in ARKIT_NAMES if n != "tongueOut"]  # tongueOut moves nothing
    assert len(data) < 600_000                                    # the head is fetched once; keep it small
    np.testing.assert_allclose(unpack(data, header, "position").reshape(-1, 3), mesh.vertices)
    faces = unpack(data, header, "index").reshape(-1, 3)
    inside = hidden_at_rest(mesh)[mesh.faces].all(1)             # the mouth's inside, drawn last and deeper
    assert header["insideTriangles"] == inside.sum() > 0
    np.testing.assert_array_equal(faces, np.concatenate([mesh.faces[~inside], mesh.faces[inside]]))
    jaw = next(c for c in header["channels"] if c["name"] == "jawOpen")
    moved = unpack(data, header, "jawOpen.index")
    offsets = unpack(data, header, "jawOpen.delta").reshape(-1, 3) * jaw["scale"] / 32767
    rebuilt = np.zeros_like(mesh.morph_deltas[INDEX["jawOpen"]])
    rebuilt[moved] = offsets
    np.testing.assert_allclose(rebuilt, mesh.morph_deltas[INDEX["jawOpen"]], atol=jaw["scale"] / 32767)
    colours = unpack(data, header, "color").reshape(-1, 3)
    head = next(p for p in mesh.parts if p.name == "head")
    hidden = hidden_at_rest(mesh)
    assert hidden[head.vertices].any() and not hidden[head.vertices].all()
    assert colours[head.vertices][hidden[head.vertices]].mean() < 0.5 * colours[head.vertices][~hidden[head.vertices]].mean()


def test_the_back_of_the_head_is_not_taken_for_the_mouth_inside():
    mesh = load_face_mesh()
    back = np.argsort(mesh.vertices[:, 2])[:50]                   # the 50 rearmost vertices
    assert not hidden_at_rest(mesh)[back].any()


def test_a_head_is_written_once_under_its_content_hash(tmp_path):
    assets = viewer.ViewerAssets(tmp_path)
    mesh = load_face_mesh()
    url = assets.mesh_url(mesh)
    assert url == assets.mesh_url(mesh) and url.startswith("gradio_api/file=") and url.endswith(".bin")
    files = list(tmp_path.glob("mesh-*.bin"))
    assert len(files) == 1 and url.endswith(files[0].name)
    assert viewer.ViewerAssets(tmp_path).mesh_url(mesh) == url    # a new process finds the same file


SPELLINGS = {"jawOpen": "jawOpen", "MouthClose": "mouthClose", "eyeBlink_L": "eyeBlinkLeft",
             "eyeBlinkRight": "eyeBlinkRight", "head.mouthSmile_L": "mouthSmileLeft"}


def test_avatar_names_in_any_spelling_and_a_partial_set(tmp_path):
    targets = {name: np.full_like(QUAD, 0.1 * (k + 1)) for k, name in enumerate(SPELLINGS)}
    targets["notAShape"] = np.ones_like(QUAD)
    avatar = avatars.read_avatar(write_gltf(tmp_path / "mine.glb", targets))
    for k, canonical in enumerate(SPELLINGS.values()):
        np.testing.assert_allclose(avatar.mesh.morph_deltas[INDEX[canonical]], 0.1 * (k + 1), rtol=1e-6)
    assert len(avatar.missing) == NUM_BLENDSHAPES - len(SPELLINGS) and "jawOpen" not in avatar.missing
    assert "5 of the 52" in avatar.summary() and "mouthFunnel" in avatar.summary()
    header = viewer.read_mesh_header(viewer.pack_mesh(avatar.mesh))
    assert sorted(c["name"] for c in header["channels"]) == sorted(SPELLINGS.values())
    assert header["missing"] == list(avatar.missing)


def test_unusable_avatars_get_plain_messages(tmp_path, monkeypatch):
    cases = {"no targets": (write_gltf(tmp_path / "static.glb"), "no morph targets with ARKit names"),
             "not glTF": (tmp_path / "junk.glb", "neither a GLB nor a glTF"),
             "wrong type": (tmp_path / "face.obj", "not a .glb or .gltf")}
    cases["not glTF"][0].write_bytes(b"PK\x03\x04 a zip file, not a head")
    cases["wrong type"][0].write_text("v 0 0 0\n")
    for name, (path, message) in cases.items():
        with pytest.raises(ValueError, match=message) as info:
            avatars.read_avatar(path)
        assert str(tmp_path) not in str(info.value), name        # no server folder in the message
    big = write_gltf(tmp_path / "big.glb", {"jawOpen": np.ones_like(QUAD)})
    monkeypatch.setattr(avatars, "MAX_AVATAR_VERTICES", 3)
    with pytest.raises(ValueError, match="4 vertices; avatars may have up to 3"):
        avatars.read_avatar(big)
    monkeypatch.setattr(avatars, "MAX_AVATAR_MB", 1e-4)
    with pytest.raises(ValueError, match="avatars may be up to"):
        avatars.read_avatar(big)


def test_an_uploaded_gltf_never_opens_other_files(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 64)
    (tmp_path / "upload").mkdir()
    path = write_gltf(tmp_path / "upload" / "mine.gltf", {"jawOpen": np.ones_like(QUAD)})
    data_uri = path.read_text().split('"uri": "')[1].split('"')[0]
    path.write_text(path.read_text().replace(data_uri, "../secret.bin"))
    with pytest.raises(ValueError, match="keeps its data in another file"):
        avatars.read_avatar(path)
    with pytest.raises(ValueError, match="past the end"):       # the library itself does read it (a user's own files)
        load_face_mesh(path)


def test_draco_files_say_why_not(tmp_path):
    path = write_gltf(tmp_path / "draco.gltf", {"jawOpen": np.ones_like(QUAD)})
    path.write_text(path.read_text().replace('{"asset"', '{"extensionsUsed": ["KHR_draco_mesh_compression"], "asset"', 1))
    with pytest.raises(ValueError, match="Draco"):
        avatars.read_avatar(path)


def test_the_library_keeps_recent_avatars_and_falls_back_to_the_default(tmp_path):
    library = avatars.AvatarLibrary(keep=2)
    ids = [library.add(write_gltf(tmp_path / f"a{k}.glb", {"jawOpen": np.full_like(QUAD, k + 1.0)})).id
           for k in range(3)]
    assert len(set(ids)) == 3
    assert library.get(ids[2]).id == ids[2] and library.get(ids[0]).id == "default"   # the oldest went
    assert library.get(None) is library.default() and not library.default().missing


def test_a_take_on_a_custom_avatar_goes_to_the_viewer_the_glb_and_the_video(whisper_checkpoints, tmp_path):
    from core.face.glb import read_glb_weights
    from demo.service import DemoService, load_talker
    talker, problem = load_talker(whisper_checkpoints)
    assert problem is None
    service = DemoService(talker, workdir=tmp_path / "work", video_size=64)
    wave = 0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000).astype(np.float32)
    take = service.generate(wave, steps=4, seed=0)
    take.avatar = service.avatars.add(sphere_avatar(tmp_path / "ball.glb", {"head.JawOpen": "jaw"}))
    head = service.viewer_take(take)
    assert head["mesh"] != service.viewer_head()["mesh"] and len(head["missing"]) == 51
    # the viewer plays the 16 kHz wave the curves were made from (a wav every browser plays), not the upload
    played, rate = sf.read(head["audio"].split("file=", 1)[1], dtype="float32")
    assert rate == 16000 and head["audio"].endswith(".wav")
    np.testing.assert_allclose(played, take.wave, atol=1 / 32767)
    # while the model runs, the viewer is sent the same track to load (no take yet: no curves)
    waiting = service.viewer_audio(service.prepare(wave, steps=4).wave, take.avatar.id)
    assert waiting["audio"] == head["audio"] and waiting["cells"] == [] and waiting["mesh"] == head["mesh"]
    curves = take.generation.blendshapes[0]
    np.testing.assert_allclose(viewer.decode_curves(head["cells"][0]["curves"]), np.clip(curves, 0, 1), atol=1e-5)
    glb = next(f for f in service.export(take) if f.suffix == ".glb")
    weights, _, _ = read_glb_weights(glb)
    assert len(load_face_mesh(glb).vertices) == len(take.avatar.mesh.vertices)   # the ball, not facecap
    np.testing.assert_allclose(weights, curves, atol=1e-6)
    import imageio_ffmpeg
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(service.render(take)))
    assert frames == len(curves)
    comparison = service.compare(wave, [4], "0, 1")
    comparison.avatar = take.avatar
    grid = service.viewer_grid(comparison)
    assert grid["cols"] == 2 and [c["label"] for c in grid["cells"]] == ["4 steps, seed 0", "4 steps, seed 1"]
    assert grid["mesh"] == head["mesh"] and grid["frames"] == len(curves) and grid["audio"] == head["audio"]
    assert "names" not in grid and "role" not in viewer.html_options("x")["html_template"]


def test_the_vendored_three_js_is_the_recorded_build_and_exports_what_the_viewer_imports():
    import hashlib
    import re
    vendor = viewer.STATIC_DIR / "vendor"
    bundle = (vendor / "three-viewer.min.js").read_text()
    recorded = re.findall(r"`([0-9a-f]{64})`", (vendor / "VENDOR.md").read_text())[-1]
    assert hashlib.sha256(bundle.encode()).hexdigest() == recorded          # scripts/vendor_three.sh rebuilds it
    assert (vendor / "LICENSE-three.txt").read_text().startswith("The MIT License")
    exported = set(re.findall(r"\w+ as (\w+)", re.search(r"export\{([^}]*)\}", bundle).group(1)))
    sources = [path.read_text() for path in viewer.STATIC_DIR.glob("*.js")]     # viewer.js and the modules it uses
    imported = {name for source in sources
                for found in re.findall(r"import \{([^}]*)\} from \"\./vendor/three-viewer\.min\.js\"", source)
                for name in re.findall(r"\w+", found)}
    assert imported <= exported and imported
    assert not any(re.search(r"https?://", source) for source in sources)  # no CDN: everything comes from the app


# ---------------------------------------------------------------- head motion

def test_a_take_carries_its_head_angles_and_a_still_take_none():
    curves = np.zeros((30, NUM_BLENDSHAPES), np.float32)
    head = np.random.default_rng(0).uniform(-0.4, 0.4, (30, 3)).astype(np.float32)
    value = viewer.payload([("turning", curves, head), ("still", curves), ("off", curves, None)], 30, "m.bin", None)
    turning, still, off = value["cells"]
    assert len(base64.b64decode(turning["head"])) == 30 * 3 * 4                  # float32 per angle
    np.testing.assert_array_equal(viewer.decode_head(turning["head"]), head)
    assert "head" not in still and "head" not in off
    with pytest.raises(ValueError, match="NaN"):
        viewer.payload([("bad", curves, np.full((30, 3), np.nan))], 30, "m.bin", None)
    with pytest.raises(ValueError, match="29 frames of head angles for 30"):
        viewer.payload([("short", curves, head[:29])], 30, "m.bin", None)


def test_the_packed_head_says_where_it_turns_and_what_turns():
    from dataclasses import replace
    mesh = load_face_mesh()
    header = viewer.read_mesh_header(viewer.pack_mesh(mesh))
    np.testing.assert_allclose(header["headPivot"], mesh.head_pivot, atol=1e-6)
    assert "headWeight" not in header["arrays"]                                 # facecap turns whole
    low, high = mesh.frame_bounds()                                              # framed turned, as the mp4 is
    assert header["bounds"] == {"min": low.tolist(), "max": high.tolist()}
    assert (low < mesh.vertices.min(axis=0)).all() and high[0] > mesh.vertices[:, 0].max()
    shares = np.linspace(0, 1, len(mesh.vertices)).astype(np.float32)
    data = viewer.pack_mesh(replace(mesh, head_weights=shares))
    np.testing.assert_array_equal(unpack(data, viewer.read_mesh_header(data), "headWeight"), shares)
