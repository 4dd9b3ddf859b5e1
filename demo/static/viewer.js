// The live 3D head: ARKit-52 curves drawn on the avatar's morph targets with three.js, locked to
// the audio's clock. One ViewerGrid per page component (the Generate take, the Compare grid):
// its cells share one clock, one play button and one seek bar. Every cell is reachable as
// window.diffusionTalkerViewers[i] with play(), pause(), seek(seconds) and state().
// Data formats are written by demo/viewer.py (mesh file layout and curve encoding documented there).
import {
  AmbientLight, BufferAttribute, BufferGeometry, Color, DirectionalLight, DoubleSide, HemisphereLight,
  Mesh, MeshStandardMaterial, OrbitControls, PerspectiveCamera, Scene, SRGBColorSpace, Vector3, WebGLRenderer,
} from "./vendor/three-viewer.min.js";

const CURVE_SCALE = 65535;
const FOV = 24;
const TARGET_FPS = 24;      // below this while playing, the canvases render fewer pixels (software WebGL)
const MIN_SCALE = 0.5;
const LIVE_SHOWN_KEPT = 9000; // (frame, time) of the last 5 minutes of live frames drawn, for latency
const LIVE_QUEUE = 15;      // live frames waiting at most (0.5 s at 30 fps, 2.5 encoder hops); older ones are skipped
const BACKGROUND = 0x292b30;
const meshes = new Map();              // url -> Promise<{geometry, header}>: each head fetched once
const registry = (window.diffusionTalkerViewers = window.diffusionTalkerViewers || []);

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

// A scene with the head's background and lights, and its camera (the lights follow the camera,
// as in the rendered video); the live head (live_viewer.js) uses it too.
export function stage() {
  const scene = new Scene();
  scene.background = new Color(BACKGROUND);
  scene.add(new AmbientLight(0xffffff, 0.35));
  scene.add(new HemisphereLight(0xffffff, 0x303030, 0.6));
  const key = new DirectionalLight(0xffffff, 1.6);
  key.position.set(-0.45, 0.55, 1.0);
  const fill = new DirectionalLight(0xffffff, 0.45);
  fill.position.set(0.7, 0.0, 0.7);
  const camera = new PerspectiveCamera(FOV, 1, 0.01, 1000);
  camera.add(key, fill);
  scene.add(camera);
  return [scene, camera];
}

// The whole head in the picture with a margin, looking at its front (+Z).
export function frameHead(camera, controls, bounds) {
  const low = new Vector3(...bounds.min), high = new Vector3(...bounds.max);
  const centre = low.clone().add(high).multiplyScalar(0.5);
  const half = high.clone().sub(low).multiplyScalar(0.5);
  const tan = Math.tan((FOV * Math.PI) / 360);
  const distance = 1.15 * Math.max(half.y / tan, half.x / (tan * camera.aspect)) + half.z;
  camera.near = distance / 50;
  camera.far = distance * 50;
  camera.position.set(centre.x, centre.y, centre.z + distance);
  camera.updateProjectionMatrix();
  controls.target.copy(centre);
  controls.update();
  controls.saveState();
}

// The clock: the audio element's time while it can play, else a wall clock (no sound).
class Clock {
  constructor(audio) {
    this.audio = audio;
    this.duration = 0;
    this.useAudio = false;
    this.offset = 0;
    this.startedAt = null;      // performance.now() when the wall clock started
    audio.addEventListener("error", () => this.fallBack());
  }
  load(url, duration) {
    this.pause();
    this.duration = duration;
    this.offset = 0;
    this.useAudio = Boolean(url);
    if (url) this.audio.src = new URL(url, document.baseURI).href;
    else this.audio.removeAttribute("src");
  }
  fallBack() {
    const t = this.time();
    const wasPlaying = this.playing;
    this.useAudio = false;
    this.offset = t;
    this.startedAt = wasPlaying ? performance.now() : null;
  }
  get playing() {
    return this.useAudio ? !this.audio.paused && !this.audio.ended : this.startedAt !== null;
  }
  time() {
    const t = this.useAudio ? this.audio.currentTime
      : this.offset + (this.startedAt === null ? 0 : (performance.now() - this.startedAt) / 1000);
    return Math.min(Math.max(t, 0), this.duration);
  }
  play() {
    if (this.time() >= this.duration - 1e-3) this.seek(0);
    if (this.useAudio) {
      return this.audio.play().catch(() => { this.fallBack(); this.startedAt = performance.now(); });
    }
    if (this.startedAt === null) this.startedAt = performance.now();
    return Promise.resolve();
  }
  pause() {
    if (this.useAudio) this.audio.pause();
    else if (this.startedAt !== null) { this.offset = this.time(); this.startedAt = null; }
  }
  seek(seconds) {
    const t = Math.min(Math.max(Number(seconds) || 0, 0), this.duration);
    if (this.useAudio) this.audio.currentTime = t;
    this.offset = t;
    if (this.startedAt !== null) this.startedAt = performance.now();
  }
  tick() {  // the wall clock stops at the end, as the audio does
    if (!this.useAudio && this.startedAt !== null && this.time() >= this.duration) {
      this.offset = this.duration; this.startedAt = null;
    }
  }
}

// One head in one canvas, with its own camera and orbit controls.
class Cell {
  constructor(grid, figure, label) {
    this.grid = grid;
    this.figure = figure;
    this.box = figure.querySelector(".dt-canvas");
    this.setLabel(label);
    this.curves = null;
    this.frames = 0;
    this.drawn = 0;
    this.shownAt = null;
    this.weights = new Float32Array(52);
    this.renderer = new WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.outputColorSpace = SRGBColorSpace;
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2) * grid.scale);
    this.box.appendChild(this.renderer.domElement);
    [this.scene, this.camera] = stage();
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
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
    if (this.mesh) this.scene.remove(this.mesh);
    this.channelToMorph = loaded.channelToMorph;
    const material = new MeshStandardMaterial({ vertexColors: true, roughness: 0.62, metalness: 0, side: DoubleSide });
    this.mesh = new Mesh(loaded.geometry, material);
    this.scene.add(this.mesh);
    this.frame(loaded.header.bounds);
    this.dirty = true;
  }
  frame(bounds) { frameHead(this.camera, this.controls, bounds); }
  setCurves(curves, frames) {
    this.curves = curves;
    this.frames = frames;
    this.shownAt = null;
    this.dirty = true;
  }
  setScale(scale) {
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2) * scale);
    this.resize();
  }
  resize() {
    const width = Math.max(this.box.clientWidth, 64);
    const height = Math.max(this.box.clientHeight, 64);
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
    this.dirty = true;
  }
  draw(frame) {
    // Every draw records the frame it showed, a head with no take too (frame 0): the loop redraws
    // only when that frame changes or something is dirty, so an idle page draws nothing
    // (software WebGL would otherwise take a core while nothing moves).
    const take = Boolean(this.curves && this.frames);
    const f = take ? Math.min(frame, this.frames - 1) : frame;
    if (take) this.weights = this.curves.subarray(f * 52, f * 52 + 52);
    this.shownFrame = f;
    if (this.mesh) {
      const influences = this.mesh.morphTargetInfluences;
      for (let k = 0; k < 52; k++) {
        const m = this.channelToMorph[k];
        if (m >= 0) influences[m] = this.curves ? this.weights[k] : 0;
      }
      this.renderer.render(this.scene, this.camera);
      this.drawn += 1;
      if (this.curves && this.shownAt === null) this.shownAt = performance.now();
    }
    this.dirty = false;
  }
  api() {
    const cell = this, grid = this.grid;
    return {
      play: () => grid.play(),
      pause: () => grid.pause(),
      seek: (seconds) => grid.seek(seconds),
      resetView: () => grid.resetView(),
      state: () => ({
        frame: cell.curves ? grid.frameAt(grid.clock.time(), cell.frames) : 0,
        frames: cell.frames,
        time: grid.clock.time(),
        playing: grid.clock.playing,
        weights: Array.from(cell.curves ? cell.weightsAt(grid.frameAt(grid.clock.time(), cell.frames))
                                        : new Float32Array(52)),
        label: cell.label,
        drawn: cell.drawn,
        shownAt: cell.shownAt,
        missing: grid.missing,
        ready: Boolean(cell.mesh),
        scale: grid.scale,
        live: grid.live ? { received: grid.live.received, queued: grid.live.queue.length, dropped: grid.live.dropped,
                            shown: grid.live.shown.slice() }
                        : null,
      }),
    };
  }
  weightsAt(frame) {
    return this.curves.subarray(frame * 52, frame * 52 + 52);
  }
  dispose() {
    this.controls.dispose();
    this.renderer.dispose();
    this.renderer.forceContextLoss();
    this.figure.remove();
  }
}

class ViewerGrid {
  constructor(root, role) {
    this.root = root;
    this.role = role;
    this.cells = [];
    this.scale = 1;             // pixel-ratio factor, lowered when drawing cannot keep up
    this.pace = { draws: 0, since: null };
    this.fps = 30;
    this.frames = 0;
    this.missing = [];
    this.meshUrl = null;
    this.live = null;           // live mode's frame queue (showLive), null for takes
    root.innerHTML = `
      <div class="dt-cells"></div>
      <div class="dt-toolbar">
        <button type="button" class="dt-play" aria-label="Play" disabled>Play</button>
        <input type="range" class="dt-seek" min="0" max="0" step="0.001" value="0" aria-label="Seek" disabled>
        <span class="dt-time">0.00 / 0.00 s</span>
        <button type="button" class="dt-reset" aria-label="Reset view">Reset view</button>
      </div>
      <div class="dt-status" role="status"></div>
      <audio class="dt-audio" preload="auto"></audio>`;
    this.cellsBox = root.querySelector(".dt-cells");
    this.playButton = root.querySelector(".dt-play");
    this.seekBar = root.querySelector(".dt-seek");
    this.timeLabel = root.querySelector(".dt-time");
    this.status = root.querySelector(".dt-status");
    this.clock = new Clock(root.querySelector(".dt-audio"));
    this.playButton.addEventListener("click", () => (this.clock.playing ? this.pause() : this.play()));
    this.seekBar.addEventListener("input", () => this.seek(Number(this.seekBar.value)));
    root.querySelector(".dt-reset").addEventListener("click", () => this.resetView());
    const audio = this.clock.audio;
    for (const event of ["play", "pause", "ended", "seeked"]) audio.addEventListener(event, () => this.markDirty());
    new ResizeObserver(() => this.cells.forEach((c) => c.resize())).observe(this.cellsBox);
    this.loop = this.loop.bind(this);
    requestAnimationFrame(this.loop);
  }
  frameAt(seconds, frames) {
    return Math.max(0, Math.min(frames - 1, Math.floor(seconds * this.fps + 1e-4)));
  }
  play() { return this.clock.play().then(() => this.markDirty()); }
  pause() { this.clock.pause(); this.markDirty(); }
  seek(seconds) { this.clock.seek(seconds); this.markDirty(); }
  resetView() { this.cells.forEach((c) => { c.controls.reset(); c.dirty = true; }); }
  markDirty() { this.cells.forEach((c) => { c.dirty = true; }); }
  say(text) { this.status.textContent = text; }

  layout(labels, cols) {
    if (this.cells.length !== labels.length) {
      for (const cell of this.cells) {
        registry.splice(registry.indexOf(cell.handle), 1);
        cell.dispose();
      }
      this.meshUrl = null;        // new canvases: the head goes in again
      this.cells = labels.map((label) => {
        const figure = document.createElement("figure");
        figure.className = "dt-cell";
        figure.innerHTML = `<figcaption></figcaption><div class="dt-canvas"></div>`;
        this.cellsBox.appendChild(figure);
        const cell = new Cell(this, figure, label);
        cell.handle = cell.api();
        registry.push(cell.handle);
        return cell;
      });
    }
    this.cellsBox.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
    this.cells.forEach((cell, i) => { cell.setLabel(labels[i]); cell.resize(); });
  }

  async showMesh(url) {
    if (!url || url === this.meshUrl) return;
    try {
      const loaded = await loadMesh(url);
      this.meshUrl = url;
      this.cells.forEach((cell) => cell.setMesh(loaded));
    } catch (err) {
      this.say(`The 3D head could not be loaded: ${err.message || err}`);
    }
  }

  async show(value) {
    if (!value) return;
    if (value.live) return this.showLive(value);
    this.live = null;
    const cells = value.cells || [];
    if (!cells.length) {          // a head with no take yet (the page's first view, a new avatar)
      if (!this.cells.length) this.layout([""], 1);
      this.missing = value.missing || [];
      this.describeMissing();
      return this.showMesh(value.mesh);
    }
    this.pause();
    this.fps = value.fps;
    this.frames = value.frames;
    this.missing = value.missing || [];
    this.layout(cells.map((c) => c.label), value.cols || 1);
    cells.forEach((c, i) => this.cells[i].setCurves(decodeCurves(c.curves, c.frames), c.frames));
    this.clock.load(value.audio, value.frames / value.fps);
    this.seekBar.max = String(value.frames / value.fps);
    this.seekBar.step = String(1 / value.fps);
    this.seekBar.disabled = this.playButton.disabled = false;
    this.describeMissing();
    if (value.mesh !== this.meshUrl) {
      this.meshUrl = null;
      await this.showMesh(value.mesh);
    } else {
      const loaded = await loadMesh(value.mesh);
      this.cells.forEach((cell) => { if (!cell.mesh) cell.setMesh(loaded); });
    }
    if (value.autoplay !== false) this.play();
  }
  // Live mode (demo/live.py: live_value): frames arrive in bursts as the server decodes them and
  // are drawn at their pace (1/fps each) from a short queue; frames a slow page cannot draw in
  // time and a queue longer than LIVE_QUEUE are skipped, so the head never falls behind the speaker.
  async showLive(value) {
    if (value.reset || !this.live) {
      this.pause();
      if (this.cells.length !== 1) this.layout(["Live"], 1);
      this.live = { queue: [], received: 0, dropped: 0, next: 0, shown: [] };
      this.fps = value.fps;
      this.frames = 0;
      this.seekBar.disabled = this.playButton.disabled = true;
      this.cells[0].setCurves(new Float32Array(52), 1);
    }
    if (value.frames) {
      const curves = decodeCurves(value.curves, value.frames);
      const now = performance.now();
      if (!this.live.queue.length && this.live.next < now) this.live.next = now;   // starved: the clock restarts
      for (let f = 0; f < value.frames; f++) {
        this.live.queue.push({ index: value.first + f, weights: curves.slice(f * 52, f * 52 + 52) });
      }
      this.live.received += value.frames;
    }
    if (value.mesh !== this.meshUrl) await this.showMesh(value.mesh);
  }
  liveTick() {  // the newest frame whose time has come (a slow page skips frames, never falls behind)
    const live = this.live, now = performance.now(), step = 1000 / this.fps;
    if (!live.queue.length || now < live.next) return false;
    let take = 1 + Math.floor((now - live.next) / step);
    take = Math.min(live.queue.length, Math.max(take, live.queue.length - LIVE_QUEUE));
    const shown = live.queue.splice(0, take);
    live.dropped += take - 1;
    live.next += take * step;
    const frame = shown[take - 1];
    this.cells[0].setCurves(frame.weights, 1);
    // (stream frame index, page time it was drawn): mic-to-face latency = drawn - (start + index / fps)
    live.shown.push([frame.index, now]);
    if (live.shown.length > LIVE_SHOWN_KEPT) live.shown.shift();
    return true;
  }
  keepPace(drew) {  // every 15 draws while playing: too slow -> 20 % fewer pixels per side, down to half
    if (!this.clock.playing) { this.pace.since = null; return; }
    const now = performance.now();
    if (this.pace.since === null) { this.pace = { draws: 0, since: now }; return; }
    if (drew) this.pace.draws += 1;
    if (this.pace.draws < 15) return;
    const rate = (1000 * this.pace.draws) / (now - this.pace.since);
    if (rate < Math.min(TARGET_FPS, this.fps * 0.8) && this.scale > MIN_SCALE) {
      this.scale = Math.max(MIN_SCALE, this.scale * 0.8);
      this.cells.forEach((cell) => cell.setScale(this.scale));
    }
    this.pace = { draws: 0, since: now };
  }
  describeMissing() {
    this.say(this.missing.length
      ? `This avatar has no morph target for ${this.missing.length} of the 52 channels (left still): ${this.missing.join(", ")}.`
      : "");
  }

  loop() {
    requestAnimationFrame(this.loop);
    this.clock.tick();
    if (this.live) this.liveTick();
    const t = this.clock.time();
    let drew = false;
    for (const cell of this.cells) {
      const frame = cell.curves ? this.frameAt(t, cell.frames) : 0;
      if (cell.dirty || frame !== cell.shownFrame) { cell.draw(frame); drew = true; }
    }
    this.keepPace(drew);
    if (this.frames) {
      if (document.activeElement !== this.seekBar) this.seekBar.value = String(t);
      this.timeLabel.textContent = `${t.toFixed(2)} / ${(this.frames / this.fps).toFixed(2)} s`;
    }
    const label = this.clock.playing ? "Pause" : "Play";
    if (this.playButton.textContent !== label) {
      this.playButton.textContent = label;
      this.playButton.setAttribute("aria-label", label);
    }
  }
}

// Called by the gr.HTML component's js_on_load (demo/viewer.py: html_options).
export function mount(root, props, watch) {
  if (!root) return;
  let grid;
  try {
    grid = new ViewerGrid(root, root.dataset.role);
  } catch (err) {
    root.textContent = `The 3D viewer needs WebGL, which this browser does not offer (${err.message || err}).`;
    return;
  }
  const update = () => grid.show(props.value).catch((err) => grid.say(`The 3D viewer failed: ${err.message || err}`));
  watch("value", update);
  if (props.value) update();
  else if (props.mesh) grid.show({ mesh: props.mesh, cells: [] });
}
