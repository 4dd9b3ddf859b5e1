// What every 3D component of the page shares: its heads (heads.js) drawn by ONE WebGL renderer,
// each in its own rectangle of the component's canvas (viewport + scissor), so a page holds one
// WebGL context per component however many heads it shows (browsers allow about 16). A Stage
// resizes its canvas, draws the heads that changed, lowers its pixel ratio when drawing cannot
// keep up, lists its heads in window.diffusionTalkerViewers and is torn down (animation frame,
// resize observer, renderer) when it leaves the page or the page is left. viewer.js (takes on
// one clock) and live_viewer.js (the Live tab's head) build on it.
import { SRGBColorSpace, WebGLRenderer } from "./vendor/three-viewer.min.js";
import { Head, loadMesh } from "./heads.js";

const registry = (window.diffusionTalkerViewers = window.diffusionTalkerViewers || []);
const stages = new Set();
let contexts = 0;           // WebGL renderers made by this page (diagnostics)
let software = null;        // drawsInSoftware(), asked once

// True where WebGL draws on the CPU (no GPU: SwiftShader, llvmpipe): there every pixel drawn takes
// CPU time from the page and from whatever shares the machine (the app's own server, on one computer).
export function drawsInSoftware() {
  if (software === null) {
    const canvas = document.createElement("canvas");
    const gl = canvas.getContext("webgl2") || canvas.getContext("webgl");
    if (!gl) return (software = false);          // no WebGL: the Stage says so itself
    const info = gl.getExtension("WEBGL_debug_renderer_info");
    const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    software = /swiftshader|llvmpipe|softpipe|software|basic render/i.test(name);
    gl.getExtension("WEBGL_lose_context")?.loseContext();   // the probe gives its context back at once
  }
  return software;
}

window.addEventListener("pagehide", () => [...stages].forEach((stage) => stage.dispose()));
window.addEventListener("pageshow", (event) => { if (event.persisted) location.reload(); });  // back from the cache: torn down

export class Stage {
  // `toolbar`: the subclass's controls before "Reset view"; `below`: markup under the status line;
  // `antialias`: smooth edges (in software WebGL about 1.5x the CPU of a draw without).
  constructor(root, { toolbar = "", below = "", minScale = 0.5, antialias = true } = {}) {
    this.root = root;
    this.heads = [];
    this.scale = 1;             // pixel-ratio factor, lowered when drawing cannot keep up
    this.minScale = minScale;
    this.missing = [];
    this.meshUrl = null;
    this.ticks = 0;
    root.innerHTML = `
      <div class="dt-stage"><canvas class="dt-gl"></canvas><div class="dt-cells"></div></div>
      <div class="dt-toolbar">${toolbar}
        <button type="button" class="dt-reset" aria-label="Reset view">Reset view</button>
      </div>
      <div class="dt-status" role="status"></div>${below}`;
    this.stage = root.querySelector(".dt-stage");
    this.canvas = root.querySelector(".dt-gl");
    this.cellsBox = root.querySelector(".dt-cells");
    this.status = root.querySelector(".dt-status");
    this.renderer = new WebGLRenderer({ canvas: this.canvas, antialias, alpha: true, preserveDrawingBuffer: true });
    contexts += 1;
    this.renderer.outputColorSpace = SRGBColorSpace;
    this.renderer.setClearColor(0x000000, 0);
    this.renderer.setScissorTest(true);
    root.querySelector(".dt-reset").addEventListener("click", () => this.resetView());
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.stage);
    this.loop = this.loop.bind(this);
    this.raf = requestAnimationFrame(this.loop);
    stages.add(this);
  }
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
  lowerResolution() {  // 20 % fewer pixels per side, down to minScale
    if (this.scale <= this.minScale) return;
    this.scale = Math.max(this.minScale, this.scale * 0.8);
    this.resize();
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
  // The handle window.diffusionTalkerViewers holds for `head`: play(), pause(), seek(seconds),
  // resetView(), state(); diagnostics() holds counters for tests and measurements, not an API.
  api(head) {
    const stage = this;
    return {
      resetView: () => stage.resetView(),
      diagnostics: () => ({
        ...head.counters, draws: head.counters.draws.slice(), scale: stage.scale, ticks: stage.ticks,
        disposed: stage.disposed === true, contexts, live: null,
        headQuaternion: head.headBone ? head.headBone.quaternion.toArray() : null,   // (x, y, z, w) as drawn last
        groups: head.mesh ? head.mesh.geometry.groups.map((g) => ({   // what each material draws, and how deep
          start: g.start, count: g.count, offset: head.mesh.material[g.materialIndex].polygonOffset,
        })) : null,
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

  // Every head whose frame changed or that is dirty, drawn in its rectangle; true if any was.
  drawHeads(frameOf) {
    let drew = false;
    for (const head of this.heads) {
      const frame = frameOf(head);
      if (head.dirty || frame !== head.shownFrame) {
        const [x, y, width, height] = this.viewport(head);
        this.renderer.setViewport(x, y, width, height);
        this.renderer.setScissor(x, y, width, height);
        head.draw(this.renderer, frame);
        drew = true;
      }
    }
    return drew;
  }
  loop() {
    if (!this.root.isConnected) { this.dispose(); return; }   // the component left the page
    this.raf = requestAnimationFrame(this.loop);
    this.ticks += 1;
    this.tick(performance.now());
  }
  tick() {}                 // the subclass's work on every animation frame
  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    cancelAnimationFrame(this.raf);
    this.resizeObserver.disconnect();
    this.forget();
    this.renderer.dispose();
    this.renderer.forceContextLoss();
    stages.delete(this);
  }
}

// The body of a module's mount(), called by the gr.HTML component's js_on_load (demo/viewer.py:
// html_options): a `Kind` of Stage in `root` that shows every new value of the component.
export function mountStage(Kind, root, props, watch) {
  if (!root) return;
  let stage;
  try {
    stage = new Kind(root, props);
  } catch (err) {
    root.textContent = `The 3D viewer needs WebGL, which this browser does not offer (${err.message || err}).`;
    return;
  }
  const update = () => stage.show(props.value).catch((err) => stage.say(`The 3D viewer failed: ${err.message || err}`));
  watch("value", update);
  if (props.value) update();
  else if (props.mesh) stage.show({ mesh: props.mesh, cells: [] });
}
