// One head of a viewer: its scene, camera and orbit controls, the curves and head angles it plays
// and the frame it last showed. Heads draw into their component's one WebGL renderer, each in its
// own rectangle (stage.js); the packed mesh is fetched once per URL and shared by every head that
// shows it. Data formats are written by demo/viewer.py (mesh file layout, curve and head encoding
// documented there).
// The head turns as in the mp4 and the GLB export: the mesh is skinned to two bones, a still root
// and a head bone at the mesh's neck pivot; each vertex follows the head bone by its headWeight
// (all of it when the file has none), and the bone's rotation is the frame's yaw/pitch/roll as
// three.js Euler "YXZ" (core/head_pose.py).
import {
  AmbientLight, Bone, BufferAttribute, BufferGeometry, Color, DirectionalLight, DoubleSide, HemisphereLight,
  MeshStandardMaterial, OrbitControls, PerspectiveCamera, Scene, Skeleton, SkinnedMesh, Vector3,
} from "./vendor/three-viewer.min.js";

const CURVE_SCALE = 65535;
const FOV = 24;
const BACKGROUND = 0x292b30;
const DRAWS_KEPT = 600;                // (frame, page time) of the last draws, for measurements
const INSIDE_OFFSET = 4;               // polygon offset of the mouth's inside (depth slope and units)
const meshes = new Map();              // url -> Promise<{geometry, header, channelToMorph}>

export function loadMesh(url) {
  if (!meshes.has(url)) {
    const promise = fetch(new URL(url, document.baseURI), { cache: "force-cache" })
      .then((response) => {
        if (!response.ok) throw new Error(`the head could not be fetched (HTTP ${response.status})`);
        return response.arrayBuffer();
      })
      .then(parseMesh);
    promise.catch(() => meshes.delete(url));  // a failed fetch may be retried
    meshes.set(url, promise);
  }
  return meshes.get(url);
}

function parseMesh(buffer) {
  const magic = new TextDecoder().decode(new Uint8Array(buffer, 0, 4));
  if (magic !== "DTV1") throw new Error("not a viewer mesh file");
  const headerLength = new DataView(buffer).getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, headerLength)));
  const start = 8 + headerLength;
  const kinds = { f4: Float32Array, u2: Uint16Array, u4: Uint32Array, i2: Int16Array };
  const array = (name) => {
    const a = header.arrays[name];
    return new kinds[a.type](buffer, start + a.offset, a.length);
  };
  const geometry = new BufferGeometry();
  geometry.setAttribute("position", new BufferAttribute(array("position"), 3));
  geometry.setAttribute("normal", new BufferAttribute(array("normal"), 3));
  geometry.setAttribute("color", new BufferAttribute(array("color"), 3));
  geometry.setIndex(new BufferAttribute(array("index"), 1));
  const morphs = [];
  const channelToMorph = new Int16Array(52).fill(-1);
  for (const channel of header.channels) {
    const offsets = new Float32Array(header.vertices * 3);
    const indices = array(`${channel.name}.index`);
    const deltas = array(`${channel.name}.delta`);
    const scale = channel.scale / 32767;
    for (let i = 0; i < indices.length; i++) {
      for (let k = 0; k < 3; k++) offsets[indices[i] * 3 + k] = deltas[i * 3 + k] * scale;
    }
    channelToMorph[channel.index] = morphs.length;
    morphs.push(new BufferAttribute(offsets, 3));
  }
  geometry.morphAttributes.position = morphs;
  geometry.morphTargetsRelative = true;
  const share = header.arrays.headWeight ? array("headWeight") : null;   // none: the whole mesh turns
  const skinIndex = new Uint16Array(header.vertices * 4), skinWeight = new Float32Array(header.vertices * 4);
  for (let v = 0; v < header.vertices; v++) {
    const w = share ? share[v] : 1;
    skinIndex[v * 4 + 1] = 1;                 // bone 0: the still root, bone 1: the head
    skinWeight[v * 4] = 1 - w;
    skinWeight[v * 4 + 1] = w;
  }
  geometry.setAttribute("skinIndex", new BufferAttribute(skinIndex, 4));
  geometry.setAttribute("skinWeight", new BufferAttribute(skinWeight, 4));
  geometry.computeBoundingSphere();
  return { geometry, header, channelToMorph };
}

export function decodeCurves(text, frames) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const fixed = new Uint16Array(bytes.buffer);  // little-endian, as every browser is
  const curves = new Float32Array(fixed.length);
  for (let i = 0; i < fixed.length; i++) curves[i] = fixed[i] / CURVE_SCALE;
  if (curves.length !== frames * 52) throw new Error("the curves do not match their frame count");
  return curves;
}

export function decodeHead(text, frames) {  // yaw, pitch, roll radians per frame (float32, little-endian)
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const angles = new Float32Array(bytes.buffer);
  if (angles.length !== frames * 3) throw new Error("the head angles do not match their frame count");
  return angles;
}

const STILL = new Float32Array(3);

export class Head {
  constructor(figure, label) {
    this.figure = figure;
    this.box = figure.querySelector(".dt-canvas");   // its rectangle of the grid's canvas; takes the mouse
    this.setLabel(label);
    this.curves = null;
    this.turns = null;               // head angles [frames * 3], or null: a still head
    this.frames = 0;
    this.weights = new Float32Array(52);
    this.angles = STILL;
    this.counters = { drawn: 0, shownAt: null, movedAt: null, firstFrame: null, movedFrame: null, draws: [] };
    this.scene = new Scene();
    this.scene.background = new Color(BACKGROUND);
    this.scene.add(new AmbientLight(0xffffff, 0.35));
    this.scene.add(new HemisphereLight(0xffffff, 0x303030, 0.6));
    const key = new DirectionalLight(0xffffff, 1.6);
    key.position.set(-0.45, 0.55, 1.0);
    const fill = new DirectionalLight(0xffffff, 0.45);
    fill.position.set(0.7, 0.0, 0.7);
    this.camera = new PerspectiveCamera(FOV, 1, 0.01, 1000);
    this.camera.add(key, fill);      // lights follow the camera, as in the rendered video
    this.scene.add(this.camera);
    this.controls = new OrbitControls(this.camera, this.box);
    this.controls.addEventListener("change", () => { this.dirty = true; });
    this.dirty = true;
  }
  setLabel(label) {
    this.label = label;
    const caption = this.figure.querySelector("figcaption");
    caption.textContent = label;
    caption.hidden = !label;
  }
  setMesh(loaded) {
    if (this.mesh) { this.scene.remove(this.mesh); this.mesh.material.forEach((m) => m.dispose()); }
    this.channelToMorph = loaded.channelToMorph;
    const skin = new MeshStandardMaterial({ vertexColors: true, roughness: 0.62, metalness: 0, side: DoubleSide });
    const inside = skin.clone();              // the mouth's inside: the last triangles, drawn a little deeper
    Object.assign(inside, { polygonOffset: true, polygonOffsetFactor: INSIDE_OFFSET, polygonOffsetUnits: INSIDE_OFFSET });
    const geometry = loaded.geometry, insideCount = 3 * (loaded.header.insideTriangles || 0);
    geometry.clearGroups();
    geometry.addGroup(0, geometry.index.count - insideCount, 0);
    geometry.addGroup(geometry.index.count - insideCount, insideCount, 1);
    this.mesh = new SkinnedMesh(geometry, [skin, inside]);
    this.mesh.frustumCulled = false;       // its bounds are the head at rest; a turned head is still in view
    const root = new Bone();
    this.headBone = new Bone();
    this.headBone.position.fromArray(loaded.header.headPivot || [0, 0, 0]);
    root.add(this.headBone);
    this.mesh.add(root);
    this.mesh.updateMatrixWorld(true);     // the bones' rest pose is the bind pose
    this.mesh.bind(new Skeleton([root, this.headBone]));
    this.scene.add(this.mesh);
    this.frame(loaded.header.bounds);
    this.dirty = true;
  }
  frame(bounds) {  // the whole head in the picture with a margin, looking at its front (+Z)
    const low = new Vector3(...bounds.min), high = new Vector3(...bounds.max);
    const centre = low.clone().add(high).multiplyScalar(0.5);
    const half = high.clone().sub(low).multiplyScalar(0.5);
    const tan = Math.tan((FOV * Math.PI) / 360);
    const distance = 1.15 * Math.max(half.y / tan, half.x / (tan * this.camera.aspect)) + half.z;
    this.camera.near = distance / 50;
    this.camera.far = distance * 50;
    this.camera.position.set(centre.x, centre.y, centre.z + distance);
    this.camera.updateProjectionMatrix();
    this.controls.target.copy(centre);
    this.controls.update();
    this.controls.saveState();
  }
  setCurves(curves, frames, turns = null) {
    this.curves = curves;
    this.turns = turns;
    this.frames = frames;
    Object.assign(this.counters, { shownAt: null, movedAt: null, firstFrame: null, movedFrame: null });
    this.dirty = true;
  }
  showWeights(weights, angles = null) {  // one frame to show (the live head's frames come one at a time)
    this.curves = weights;
    this.turns = angles;
    this.frames = 1;
    this.dirty = true;
  }
  setAspect(width, height) {
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
    this.dirty = true;
  }
  weightsAt(frame) {
    return this.curves.subarray(frame * 52, frame * 52 + 52);
  }
  anglesAt(frame) {  // yaw, pitch, roll of a frame (a still head: zeros)
    return this.turns ? this.turns.subarray(frame * 3, frame * 3 + 3) : STILL;
  }
  // Draws the head at `frame` into the renderer's current viewport. Every draw records the frame
  // it showed, a head with no take too (frame 0): the grid redraws only when that frame changes
  // or something is dirty, so an idle page draws nothing (software WebGL would take a core).
  draw(renderer, frame) {
    const take = Boolean(this.curves && this.frames);
    const f = take ? Math.min(frame, this.frames - 1) : frame;
    if (take) { this.weights = this.weightsAt(f); this.angles = this.anglesAt(f); }
    this.shownFrame = f;
    if (this.mesh) {
      const [yaw, pitch, roll] = take ? this.angles : STILL;
      this.headBone.rotation.set(pitch, yaw, roll, "YXZ");
      const influences = this.mesh.morphTargetInfluences;
      for (let k = 0; k < 52; k++) {
        const m = this.channelToMorph[k];
        if (m >= 0) influences[m] = this.curves ? this.weights[k] : 0;
      }
      renderer.render(this.scene, this.camera);
      this.count(f);
    }
    this.dirty = false;
  }
  count(frame) {  // test and measurement counters (viewer.js: diagnostics()), never the public state()
    const c = this.counters, now = performance.now();
    c.drawn += 1;
    if (!this.curves) return;
    c.draws.push([frame, now]);
    if (c.draws.length > DRAWS_KEPT) c.draws.shift();
    if (c.shownAt === null) { c.shownAt = now; c.firstFrame = frame; }
    else if (c.movedAt === null && frame !== c.firstFrame) { c.movedAt = now; c.movedFrame = frame; }
  }
  dispose() {
    this.controls.dispose();
    if (this.mesh) this.mesh.material.forEach((m) => m.dispose());
    this.figure.remove();
  }
}
