// The Live tab's head: ARKit-52 frames streamed by the server (demo/live.py: live_value) drawn
// at the page's own pace. Frames arrive in blocks (one per encoder hop, a larger one when the
// server catches up); a playhead runs at real time a little behind the newest frame (about one
// block, so that the motion is smooth) and each draw shows the frame under it: a slow page draws
// fewer frames but never falls behind the voice, and a slow software WebGL draws fewer pixels.
// The readout under the head is what the user experiences: the delay from microphone to drawn
// face, frames drawn per second, audio the server never got (if any) and the talking style.
// Reachable as window.diffusionTalkerViewers[i] (play, pause, seek, state) like every head.
import { DoubleSide, Mesh, MeshStandardMaterial, OrbitControls, SRGBColorSpace, WebGLRenderer } from "./vendor/three-viewer.min.js";
import { decodeCurves, frameHead, loadMesh, stage } from "./viewer.js";

const KEPT_FRAMES = 300;       // frames kept for drawing (10 s); older ones are dropped
const SHOWN_KEPT = 9000;       // (frame, page ms) of the last 5 minutes drawn, for latency measurements
const MAX_LAG = 0.6;           // seconds the playhead may trail its target before it jumps ahead
const REST_SECONDS = 0.35;     // after Stop the face eases to rest in this time
const READOUT_MS = 500;        // readout refresh
const LATENCY_WINDOW_MS = 5000;
const TARGET_FPS = 20;         // below this while frames flow, the canvas renders fewer pixels
const MIN_SCALE = 0.4;

function percentile(values, q) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

class LiveViewer {
  constructor(root) {
    root.innerHTML = `
      <div class="dt-cells"><figure class="dt-cell"><div class="dt-canvas"></div></figure></div>
      <div class="dt-toolbar"><button type="button" class="dt-reset" aria-label="Reset view">Reset view</button></div>
      <div class="dt-status" role="status"></div>
      <div class="dt-live-readout" aria-live="polite">The head follows your voice once you press Record.</div>`;
    this.box = root.querySelector(".dt-canvas");
    this.status = root.querySelector(".dt-status");
    this.readout = root.querySelector(".dt-live-readout");
    this.scale = 1;
    this.renderer = new WebGLRenderer({ antialias: false, preserveDrawingBuffer: true });
    this.renderer.outputColorSpace = SRGBColorSpace;
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.box.appendChild(this.renderer.domElement);
    [this.scene, this.camera] = stage();
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.addEventListener("change", () => { this.dirty = true; });
    root.querySelector(".dt-reset").addEventListener("click", () => { this.controls.reset(); this.dirty = true; });
    new ResizeObserver(() => this.resize()).observe(this.box);
    this.meshUrl = null;
    this.weights = new Float32Array(52);
    this.drawn = 0;
    this.dirty = true;
    this.reset();
    this.handle = this.api();
    (window.diffusionTalkerViewers = window.diffusionTalkerViewers || []).push(this.handle);
    this.loop = this.loop.bind(this);
    requestAnimationFrame(this.loop);
  }

  reset() {
    this.frames = new Map();       // stream frame index -> weights
    this.newest = -1;
    this.received = 0;
    this.skippedFrames = 0;        // received but never drawn (the page was too slow for them)
    this.playhead = null;          // in frames
    this.lag = 3;                  // frames the playhead trails the newest (about one block)
    this.lastTick = null;
    this.shownFrame = -1;
    this.shown = [];
    this.latencies = [];           // [page ms, mic-to-face ms]
    this.draws = [];               // page ms of recent draws (frames per second)
    this.info = {};
    this.skew = Infinity;          // page clock - server clock (plus the fastest download), ms
    this.ended = false;
    this.rest = null;              // {from: weights, at: ms} while the face eases to rest
    this.weights = new Float32Array(52);
    this.dirty = true;
  }

  async show(value) {
    if (!value) return;
    if (!value.live) {                       // the first value: the head alone
      if (value.mesh) await this.showMesh(value.mesh);
      return;
    }
    if (value.reset) this.reset();
    const now = performance.now();
    this.skew = Math.min(this.skew, performance.timeOrigin + now - value.sent);
    if (value.info) this.info = value.info;
    if (value.frames) {
      const curves = decodeCurves(value.curves, value.frames);
      for (let f = 0; f < value.frames; f++) this.frames.set(value.first + f, curves.subarray(f * 52, f * 52 + 52));
      this.lag += 0.2 * (Math.min(value.frames, 15) - this.lag);   // about one block behind the newest
      this.newest = Math.max(this.newest, value.first + value.frames - 1);
      this.received += value.frames;
      for (const index of this.frames.keys()) if (index < this.newest - KEPT_FRAMES) this.frames.delete(index);
    }
    if (value.end) this.ended = true;
    if (value.mesh && value.mesh !== this.meshUrl) await this.showMesh(value.mesh);
  }

  async showMesh(url) {
    try {
      const loaded = await loadMesh(url);
      if (this.mesh) this.scene.remove(this.mesh);
      this.channelToMorph = loaded.channelToMorph;
      const material = new MeshStandardMaterial({ vertexColors: true, roughness: 0.62, metalness: 0, side: DoubleSide });
      this.mesh = new Mesh(loaded.geometry, material);
      this.scene.add(this.mesh);
      frameHead(this.camera, this.controls, loaded.header.bounds);
      this.meshUrl = url;
      this.dirty = true;
    } catch (err) {
      this.status.textContent = `The 3D head could not be loaded: ${err.message || err}`;
    }
  }

  resize() {
    const width = Math.max(this.box.clientWidth, 64), height = Math.max(this.box.clientHeight, 64);
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
    this.dirty = true;
  }

  // The frame to show now: the playhead runs at real time, a little faster when it trails its
  // target (newest - lag) and slower when ahead; far behind, it jumps; it never passes the newest.
  advance(now) {
    if (this.newest < 0) return null;
    const fps = 30, target = this.newest - this.lag;
    if (this.playhead === null) this.playhead = Math.max(0, target);
    const dt = this.lastTick === null ? 0 : (now - this.lastTick) / 1000;
    const speed = 1 + Math.max(-0.5, Math.min(0.5, (target - this.playhead) / fps));
    this.playhead += dt * fps * speed;
    if (this.playhead < target - MAX_LAG * fps) this.playhead = target;
    if (this.ended && this.playhead < this.newest - MAX_LAG * fps) this.playhead = this.newest;
    this.playhead = Math.min(this.playhead, this.newest);
    let frame = Math.floor(this.playhead + 1e-6);
    while (frame > 0 && !this.frames.has(frame)) frame -= 1;
    return this.frames.has(frame) ? frame : null;
  }

  loop() {
    requestAnimationFrame(this.loop);
    const now = performance.now();
    const frame = this.advance(now);
    this.lastTick = now;
    if (frame !== null && frame !== this.shownFrame) {
      if (this.shownFrame >= 0 && frame > this.shownFrame + 1) this.skippedFrames += frame - this.shownFrame - 1;
      this.weights = this.frames.get(frame);
      this.shownFrame = frame;
      this.dirty = true;
      this.drawFrame(frame, now);
    } else if (this.ended && frame !== null && frame === this.newest) {
      this.easeToRest(now);
    }
    if (this.dirty) this.draw();
    if (!this.nextReadout || now >= this.nextReadout) { this.nextReadout = now + READOUT_MS; this.updateReadout(now); }
  }

  drawFrame(frame, now) {
    // (stream frame index, page time it was drawn); mic-to-face = drawn - (recording start + index / fps)
    this.shown.push([frame, now]);
    if (this.shown.length > SHOWN_KEPT) this.shown.shift();
    if (this.info.audioStart != null && Number.isFinite(this.skew)) {
      const spoken = this.info.audioStart + this.skew + (frame * 1000) / 30;
      this.latencies.push([now, performance.timeOrigin + now - spoken]);
    }
    this.draws.push(now);
  }

  easeToRest(now) {  // after Stop: from the last frame to the face at rest
    if (!this.rest) this.rest = { from: Float32Array.from(this.weights), at: now };
    const t = Math.min(1, (now - this.rest.at) / (REST_SECONDS * 1000));
    if (this.rest.done) return;
    const k = 1 - t * t * (3 - 2 * t);
    this.weights = this.rest.from.map((w) => w * k);
    this.rest.done = t >= 1;
    this.dirty = true;
  }

  draw() {
    if (this.mesh) {
      const influences = this.mesh.morphTargetInfluences;
      for (let k = 0; k < 52; k++) {
        const m = this.channelToMorph[k];
        if (m >= 0) influences[m] = this.weights[k];
      }
      this.renderer.render(this.scene, this.camera);
      this.drawn += 1;
    }
    this.dirty = false;
  }

  drawRate(now) {
    this.draws = this.draws.filter((t) => now - t < 2000);
    const span = this.draws.length > 1 ? now - this.draws[0] : 0;
    return span > 500 ? (1000 * (this.draws.length - 1)) / span : null;
  }

  keepPace(rate) {  // too few frames drawn while they flow: 20 % fewer pixels per side, down to MIN_SCALE
    if (rate === null || this.ended || rate >= TARGET_FPS || this.scale <= MIN_SCALE) return;
    this.scale = Math.max(MIN_SCALE, this.scale * 0.8);
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2) * this.scale);
    this.resize();
  }

  figures(now) {
    this.latencies = this.latencies.filter(([t]) => now - t < LATENCY_WINDOW_MS);
    const ms = this.latencies.map(([, v]) => v);
    return { latencyMs: percentile(ms, 0.5), latencyP95Ms: percentile(ms, 0.95), fps: this.drawRate(now),
             skipped: this.info.skipped || 0 };
  }

  updateReadout(now) {
    const f = this.figures(now);
    this.keepPace(f.fps);
    if (this.newest < 0 && !this.ended) {
      if (this.info.heard != null) {
        this.setReadout(`Listening... the first frames come once ${this.info.heard.toFixed(1)} s of speech and the look-ahead are in.`);
      }
      return;
    }
    const parts = [];
    if (f.latencyMs !== null) parts.push(`Mic to face ${(f.latencyMs / 1000).toFixed(2)} s (median of the last ${LATENCY_WINDOW_MS / 1000} s)`);
    if (f.fps !== null && !this.ended) parts.push(`${f.fps.toFixed(0)} frames drawn per second`);
    parts.push(f.skipped >= 0.2 ? `${f.skipped.toFixed(1)} s of audio skipped` : "no audio skipped");
    if (this.info.identity) parts.push(`talking style: ${this.info.identity}`);
    if (this.info.heard != null) parts.push(`${this.info.heard.toFixed(1)} s heard`);
    this.setReadout((this.ended ? "Stopped. " : "") + parts.join(" · "));
  }

  setReadout(text) {
    if (this.readout.textContent !== text) this.readout.textContent = text;
  }

  api() {
    const viewer = this;
    return {
      play: () => Promise.resolve(),      // a live stream plays by itself
      pause: () => {},
      seek: () => {},
      resetView: () => { viewer.controls.reset(); viewer.dirty = true; },
      state: () => {
        const f = viewer.figures(performance.now());
        return {
          frame: Math.max(0, viewer.shownFrame), frames: viewer.newest + 1, time: Math.max(0, viewer.shownFrame) / 30,
          playing: viewer.newest >= 0 && !viewer.ended, weights: Array.from(viewer.weights), label: "Live",
          drawn: viewer.drawn, ready: Boolean(viewer.mesh), scale: viewer.scale, missing: [],
          live: { received: viewer.received, dropped: viewer.skippedFrames, queued: Math.max(0, viewer.newest - viewer.shownFrame),
                  shown: viewer.shown.slice(), latencyMs: f.latencyMs, latencyP95Ms: f.latencyP95Ms, fps: f.fps,
                  skipped: f.skipped, ended: viewer.ended, resting: Boolean(viewer.rest && viewer.rest.done),
                  readout: viewer.readout.textContent },
        };
      },
    };
  }
}

// Called by the gr.HTML component's js_on_load (demo/viewer.py: html_options with LIVE_MODULE).
export function mount(root, props, watch) {
  if (!root) return;
  let live;
  try {
    live = new LiveViewer(root);
  } catch (err) {
    root.textContent = `The 3D viewer needs WebGL, which this browser does not offer (${err.message || err}).`;
    return;
  }
  const update = () => live.show(props.value).catch((err) => { live.status.textContent = `The 3D viewer failed: ${err.message || err}`; });
  watch("value", update);
  if (props.value) update();
  else if (props.mesh) live.showMesh(props.mesh);
}
