// The live 3D head: ARKit-52 curves drawn on the avatar's morph targets with three.js, locked to
// the audio's clock. One ViewerGrid per page component (the Generate take, the Compare grid, the
// Live head): its heads share one clock, one play button, one seek bar and ONE WebGL renderer,
// each head drawn in its own rectangle of the grid's canvas (viewport + scissor), so a page holds
// three WebGL contexts however many heads it shows (browsers allow about 16). Leaving the page
// tears every grid down (animation frame, resize observer, renderer).
// Every head is reachable as window.diffusionTalkerViewers[i] with play(), pause(), seek(seconds)
// and state(); diagnostics() holds counters for tests and measurements, not an API.
import { SRGBColorSpace, WebGLRenderer } from "./vendor/three-viewer.min.js";
import { Head, decodeCurves, loadMesh } from "./heads.js";
import { LiveFeed } from "./live.js";

const TARGET_FPS = 24;      // below this while playing, the canvas renders fewer pixels (software WebGL)
const MIN_SCALE = 0.5;
const registry = (window.diffusionTalkerViewers = window.diffusionTalkerViewers || []);
const grids = new Set();
let contexts = 0;           // WebGL renderers made by this page (diagnostics)

window.addEventListener("pagehide", () => [...grids].forEach((grid) => grid.dispose()));
window.addEventListener("pageshow", (event) => { if (event.persisted) location.reload(); });  // back from the cache: torn down

// The clock: the audio element's time while it can play, else a wall clock (no sound).
class Clock {
  constructor(audio) {
    this.audio = audio;
    this.duration = 0;
    this.useAudio = false;
    this.offset = 0;
    this.startedAt = null;      // performance.now() when the wall clock started
    audio.addEventListener("error", () => { if (this.useAudio) this.fallBack(); });
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

class ViewerGrid {
  constructor(root) {
    this.root = root;
    this.heads = [];
    this.scale = 1;             // pixel-ratio factor, lowered when drawing cannot keep up
    this.pace = { draws: 0, since: null };
    this.fps = 30;
    this.frames = 0;
    this.missing = [];
    this.meshUrl = null;
    this.live = null;           // a LiveFeed in live mode (live.js), null for takes
    this.ticks = 0;
    root.innerHTML = `
      <div class="dt-stage"><canvas class="dt-gl"></canvas><div class="dt-cells"></div></div>
      <div class="dt-toolbar">
        <button type="button" class="dt-play" aria-label="Play" disabled>Play</button>
        <input type="range" class="dt-seek" min="0" max="0" step="0.001" value="0" aria-label="Seek" disabled>
        <span class="dt-time">0.00 / 0.00 s</span>
        <button type="button" class="dt-reset" aria-label="Reset view">Reset view</button>
      </div>
      <div class="dt-status" role="status"></div>
      <audio class="dt-audio" preload="auto"></audio>`;
    this.stage = root.querySelector(".dt-stage");
    this.canvas = root.querySelector(".dt-gl");
    this.cellsBox = root.querySelector(".dt-cells");
    this.playButton = root.querySelector(".dt-play");
    this.seekBar = root.querySelector(".dt-seek");
    this.timeLabel = root.querySelector(".dt-time");
    this.status = root.querySelector(".dt-status");
    this.renderer = new WebGLRenderer({ canvas: this.canvas, antialias: true, alpha: true, preserveDrawingBuffer: true });
    contexts += 1;
    this.renderer.outputColorSpace = SRGBColorSpace;
    this.renderer.setClearColor(0x000000, 0);
    this.renderer.setScissorTest(true);
    this.clock = new Clock(root.querySelector(".dt-audio"));
    this.playButton.addEventListener("click", () => (this.clock.playing ? this.pause() : this.play()));
    this.seekBar.addEventListener("input", () => this.seek(Number(this.seekBar.value)));
    root.querySelector(".dt-reset").addEventListener("click", () => this.resetView());
    const audio = this.clock.audio;
    for (const event of ["play", "pause", "ended", "seeked"]) audio.addEventListener(event, () => this.markDirty());
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.stage);
    this.loop = this.loop.bind(this);
    this.raf = requestAnimationFrame(this.loop);
    grids.add(this);
  }
  frameAt(seconds, frames) {
    return Math.max(0, Math.min(frames - 1, Math.floor(seconds * this.fps + 1e-4)));
  }
  play() { return this.clock.play().then(() => this.markDirty()); }
  pause() { this.clock.pause(); this.markDirty(); }
  seek(seconds) { this.clock.seek(seconds); this.markDirty(); }
  resetView() { this.heads.forEach((h) => { h.controls.reset(); h.dirty = true; }); }
  markDirty() { this.heads.forEach((h) => { h.dirty = true; }); }
  say(text) { this.status.textContent = text; }

  resize() {  // the canvas covers the stage; a new size clears it, so every head is drawn again
    const width = Math.max(this.stage.clientWidth, 1), height = Math.max(this.stage.clientHeight, 1);
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2) * this.scale);
    this.renderer.setSize(width, height, false);
    for (const head of this.heads) head.setAspect(Math.max(head.box.clientWidth, 1), Math.max(head.box.clientHeight, 1));
    this.markDirty();
  }
  viewport(head) {  // the head's rectangle of the canvas, in CSS pixels from the bottom left (as WebGL counts)
    const stage = this.canvas.getBoundingClientRect(), box = head.box.getBoundingClientRect();
    return [box.left - stage.left, stage.bottom - box.bottom, box.width, box.height];
  }

  layout(labels, cols) {
    if (this.heads.length !== labels.length) {
      this.forget();
      this.meshUrl = null;        // new heads: the mesh goes in again
      this.heads = labels.map((label) => {
        const figure = document.createElement("figure");
        figure.className = "dt-cell";
        figure.innerHTML = `<figcaption></figcaption><div class="dt-canvas"></div>`;
        this.cellsBox.appendChild(figure);
        const head = new Head(figure, label);
        head.handle = this.api(head);
        registry.push(head.handle);
        return head;
      });
    }
    this.cellsBox.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
    this.heads.forEach((head, i) => head.setLabel(labels[i]));
    this.resize();
  }
  forget() {  // the heads leave the page and the registry
    for (const head of this.heads) {
      const i = registry.indexOf(head.handle);
      if (i >= 0) registry.splice(i, 1);
      head.dispose();
    }
    this.heads = [];
  }
  api(head) {
    const grid = this;
    const frame = () => (head.curves ? grid.frameAt(grid.clock.time(), head.frames) : 0);
    return {
      play: () => grid.play(),
      pause: () => grid.pause(),
      seek: (seconds) => grid.seek(seconds),
      resetView: () => grid.resetView(),
      state: () => ({
        frame: frame(),
        frames: head.frames,
        time: grid.clock.time(),
        playing: grid.clock.playing,
        weights: Array.from(head.curves ? head.weightsAt(frame()) : new Float32Array(52)),
        label: head.label,
        missing: grid.missing,
        ready: Boolean(head.mesh),
      }),
      diagnostics: () => ({
        ...head.counters, draws: head.counters.draws.slice(), scale: grid.scale, ticks: grid.ticks,
        disposed: grid.disposed === true, contexts, clock: grid.clock.useAudio ? "audio" : "wall",
        live: grid.live ? grid.live.stats() : null,
      }),
    };
  }

  async showMesh(url) {
    if (!url || url === this.meshUrl) return;
    try {
      const loaded = await loadMesh(url);
      this.meshUrl = url;
      this.heads.forEach((head) => head.setMesh(loaded));
    } catch (err) {
      this.say(`The 3D head could not be loaded: ${err.message || err}`);
    }
  }

  async show(value) {
    if (!value || this.disposed) return;
    if (value.live) return this.showLive(value);
    this.live = null;
    const cells = value.cells || [];
    if (!cells.length) {          // a head with no take yet (the page's first view, a new avatar)
      if (!this.heads.length) this.layout([""], 1);
      this.missing = value.missing || [];
      this.describeMissing();
      return this.showMesh(value.mesh);
    }
    this.pause();
    this.fps = value.fps;
    this.frames = value.frames;
    this.missing = value.missing || [];
    this.layout(cells.map((c) => c.label), value.cols || 1);
    cells.forEach((c, i) => this.heads[i].setCurves(decodeCurves(c.curves, c.frames), c.frames));
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
      this.heads.forEach((head) => { if (!head.mesh) head.setMesh(loaded); });
    }
    this.play();
  }
  // Live mode: frames are appended as the server sends them (live.js: LiveFeed).
  async showLive(value) {
    if (value.reset || !this.live) {
      this.pause();
      if (this.heads.length !== 1) this.layout(["Live"], 1);
      this.live = new LiveFeed(value.fps);
      this.fps = value.fps;
      this.frames = 0;
      this.seekBar.disabled = this.playButton.disabled = true;
      this.heads[0].setCurves(new Float32Array(52), 1);
    }
    this.live.push(value);
    if (value.mesh !== this.meshUrl) await this.showMesh(value.mesh);
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
      this.resize();
    }
    this.pace = { draws: 0, since: now };
  }
  describeMissing() {
    this.say(this.missing.length
      ? `This avatar has no morph target for ${this.missing.length} of the 52 channels (left still): ${this.missing.join(", ")}.`
      : "");
  }

  loop() {
    if (!this.root.isConnected) { this.dispose(); return; }   // the component left the page
    this.raf = requestAnimationFrame(this.loop);
    this.ticks += 1;
    this.clock.tick();
    if (this.live) {
      const weights = this.live.next();
      if (weights) this.heads[0].setCurves(weights, 1);
    }
    const t = this.clock.time();
    let drew = false;
    for (const head of this.heads) {
      const frame = head.curves ? this.frameAt(t, head.frames) : 0;
      if (head.dirty || frame !== head.shownFrame) {
        const [x, y, width, height] = this.viewport(head);
        this.renderer.setViewport(x, y, width, height);
        this.renderer.setScissor(x, y, width, height);
        head.draw(this.renderer, frame);
        drew = true;
      }
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
  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    cancelAnimationFrame(this.raf);
    this.resizeObserver.disconnect();
    this.clock.pause();
    this.forget();
    this.renderer.dispose();
    this.renderer.forceContextLoss();
    grids.delete(this);
  }
}

// Called by the gr.HTML component's js_on_load (demo/viewer.py: html_options).
export function mount(root, props, watch) {
  if (!root) return;
  let grid;
  try {
    grid = new ViewerGrid(root);
  } catch (err) {
    root.textContent = `The 3D viewer needs WebGL, which this browser does not offer (${err.message || err}).`;
    return;
  }
  const update = () => grid.show(props.value).catch((err) => grid.say(`The 3D viewer failed: ${err.message || err}`));
  watch("value", update);
  if (props.value) update();
  else if (props.mesh) grid.show({ mesh: props.mesh, cells: [] });
}
