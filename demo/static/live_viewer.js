// The Live tab's head and microphone. A click on Record (the button `props.record` names) opens the
// microphone (microphone.js); Record's answer names the stream's upload address, and each upload's
// answer brings the frames decoded since (demo/live.py: live_value), drawn at the page's own pace.
// Frames arrive in blocks (one per encoder hop, a larger one when the server catches up); a
// playhead runs at real time about a block behind the frames as they come (MARGIN_FRAMES, so that
// the motion is smooth) and each draw shows the frame under it: a slow page draws fewer frames but
// never falls behind the voice, and a slow software WebGL draws fewer pixels (all of them again
// once the face rests after Stop). The readout under the head is what the user experiences: the delay from
// microphone to drawn face, frames drawn per second, audio the server never got (if any) and the
// talking style. A click on Stop (`props.stop`) sends
// what is left and stops the microphone; after Stop the face eases to rest. A value's `head`
// (yaw/pitch/roll radians per frame, as a take's cells carry it; absent: still) turns the head
// with the frame it belongs to. A Stage (stage.js) with one head and no play bar: the head is
// reachable as window.diffusionTalkerViewers[i] like every head; diagnostics().live holds the
// stream's counters.
import { decodeCurves, decodeHead } from "./heads.js";
import { Microphone } from "./microphone.js";
import { Stage, drawsInSoftware, mountStage } from "./stage.js";

const FPS = 30;
const KEPT_FRAMES = 300;       // frames kept for drawing (10 s); older ones are dropped
const SHOWN_KEPT = 9000;       // (frame, page ms) of the last 5 minutes drawn, for latency measurements
const MAX_LAG = 0.6;           // seconds the playhead may trail its target before it jumps ahead
// The playhead's target: a block (the frames of one answer) plus MARGIN_FRAMES behind the newest frame
// when it came, running on at real time from then, as the next block's frames will: each block's first
// frame is drawn about MARGIN_FRAMES after it arrives, and a block that comes that much late holds
// nothing up. The playhead closes in on the target at CATCH_UP x the distance (in seconds) per second.
// Against a target that stood still between blocks: 0.07-0.12 s less from a block's arrival to its drawing in interleaved
// Chromium runs (docs/DECISIONS.md, Live).
const MARGIN_FRAMES = 2;
const CATCH_UP = 3;
const REST_SECONDS = 0.35;     // after Stop the face eases to rest in this time
const READOUT_MS = 500;        // readout refresh
const LATENCY_WINDOW_MS = 5000;
const TARGET_FPS = 20;         // below this while frames flow, the canvas renders fewer pixels
// A page that draws in software (no GPU) shares the CPU with the server on a one-computer setup: while
// streaming it draws at most SOFTWARE_FPS frames a second, without antialiasing, at SOFTWARE_SCALE of its
// pixels per side at most (lower, down to MIN_SCALE, if even that is too slow); at rest the head is drawn
// sharp again (docs/DECISIONS.md, Live). With a GPU every frame is drawn and the resolution never drops.
const SOFTWARE_FPS = 15;
const SOFTWARE_SCALE = 0.5;
const MIN_SCALE = 0.25;
const UPLOAD_WAIT_MS = 30000;  // a microphone opened at Record whose stream never starts is closed then

function percentile(values, q) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

class LiveViewer extends Stage {
  constructor(root, props = {}) {
    super(root, {
      below: `<div class="dt-live-readout" aria-live="polite">The head follows your voice once you press Record.</div>`,
      minScale: MIN_SCALE,
      antialias: !drawsInSoftware(),
    });
    this.software = drawsInSoftware();
    this.readout = root.querySelector(".dt-live-readout");
    this.layout([""], 1);
    this.head = this.heads[0];
    this.microphone = null;
    this.reset();
    // the buttons are Gradio's: clicks are caught on the document, whenever the buttons are drawn
    this.onClick = (event) => {
      if (props.record && event.target.closest(props.record)) this.startRecording();
      else if (props.stop && event.target.closest(props.stop)) this.stopRecording();
    };
    document.addEventListener("click", this.onClick, true);
  }

  // Record: the microphone opens at the click (the browser asks once) and holds what it records
  // until Record's answer names where to send it.
  startRecording() {
    if (this.microphone) this.microphone.close();
    const microphone = (this.microphone = new Microphone((answer) => this.show(answer), (problem) => this.problem(problem)));
    this.stopping = false;
    this.problemText = null;
    const scale = Math.min(this.streamingScale || 1, this.software ? SOFTWARE_SCALE : 1);
    if (scale !== this.scale) {
      this.scale = scale;
      this.resize();
    }
    microphone.open().catch((err) => {
      microphone.close();
      this.problem(`The microphone could not be opened (${err.message || err}). Allow the page to use it and press Record again.`);
    });
    setTimeout(() => { if (!microphone.url) microphone.close(); }, UPLOAD_WAIT_MS);
  }
  stopRecording() {
    this.stopping = true;
    if (this.microphone) this.microphone.finish();
  }
  problem(message) {
    if (this.stopping) return;            // after Stop, the server has ended the stream: not a problem
    this.ended = true;
    this.problemText = message;
    this.setReadout(message);
  }
  dispose() {
    document.removeEventListener("click", this.onClick, true);
    if (this.microphone) this.microphone.close();
    super.dispose();
  }

  reset() {
    this.frames = new Map();       // stream frame index -> weights
    this.turns = new Map();        // stream frame index -> head angles (frames that came with them)
    this.newest = -1;
    this.received = 0;
    this.skippedFrames = 0;        // received but never drawn (the page was too slow for them)
    this.playhead = null;          // in frames
    this.lag = 3;                  // frames in a block (a running mean)
    this.arrivedAt = null;         // page ms at which the newest frame came
    this.lastTick = null;
    this.shownFrame = -1;
    this.shown = [];
    this.latencies = [];           // [page ms, mic-to-face ms]
    this.draws = [];               // page ms of recent draws (frames per second)
    this.info = {};
    this.message = null;           // the server's line for the readout until frames come (e.g. a place in line)
    this.ended = false;
    this.rest = null;              // {from: weights, at: ms} while the face eases to rest
    this.head.showWeights(new Float32Array(52));
  }
  showFrame(frame) {
    this.head.showWeights(this.frames.get(frame), this.turns.get(frame) || null);
  }

  async show(value) {
    if (!value || this.disposed) return;
    if (!value.live) return this.showMesh(value.mesh);     // the first value: the head alone
    if (value.reset) this.reset();
    if (value.upload && this.microphone && !this.microphone.closed) this.microphone.sendTo(value.upload);
    if (value.follow && this.microphone && !this.microphone.closed) this.microphone.follow(value.follow);
    if (value.message) this.message = value.message;
    if (value.info && Object.keys(value.info).length) this.info = value.info;
    if (value.info && value.info.cadence && this.microphone) this.microphone.cadence = value.info.cadence;
    if (value.frames) {
      const curves = decodeCurves(value.curves, value.frames);
      const angles = value.head ? decodeHead(value.head, value.frames) : null;
      for (let f = 0; f < value.frames; f++) {
        this.frames.set(value.first + f, curves.subarray(f * 52, f * 52 + 52));
        if (angles) this.turns.set(value.first + f, angles.subarray(f * 3, f * 3 + 3));
      }
      this.lag += 0.2 * (Math.min(value.frames, 15) - this.lag);
      if (value.first + value.frames - 1 > this.newest) this.arrivedAt = performance.now();
      this.newest = Math.max(this.newest, value.first + value.frames - 1);
      this.received += value.frames;
      for (const index of this.frames.keys()) {
        if (index < this.newest - KEPT_FRAMES) { this.frames.delete(index); this.turns.delete(index); }
      }
    }
    if (value.end) {
      this.ended = true;
      if (this.microphone) this.microphone.finish();
    }
    await this.showMesh(value.mesh);
  }

  // The frame to show now: the playhead runs at real time, a little faster when it trails its
  // target (MARGIN_FRAMES) and slower when ahead; far behind, it jumps; it never passes the newest.
  advance(now) {
    if (this.newest < 0) return null;
    const target = Math.min(this.newest, this.newest - this.lag - MARGIN_FRAMES + ((now - this.arrivedAt) * FPS) / 1000);
    if (this.playhead === null) this.playhead = Math.max(0, target);
    const dt = this.lastTick === null ? 0 : (now - this.lastTick) / 1000;
    const speed = 1 + Math.max(-0.5, Math.min(0.5, (CATCH_UP * (target - this.playhead)) / FPS));
    this.playhead += dt * FPS * speed;
    if (this.playhead < target - MAX_LAG * FPS) this.playhead = target;
    if (this.ended && this.playhead < this.newest - MAX_LAG * FPS) this.playhead = this.newest;
    this.playhead = Math.min(this.playhead, this.newest);
    let frame = Math.floor(this.playhead + 1e-6);
    while (frame > 0 && !this.frames.has(frame)) frame -= 1;
    return this.frames.has(frame) ? frame : null;
  }

  tick(now) {
    const frame = this.advance(now);
    this.lastTick = now;
    const drawNow = !this.software || this.drawnAt === undefined || now - this.drawnAt >= 1000 / SOFTWARE_FPS - 8;
    if (frame !== null && frame !== this.shownFrame && drawNow) {
      this.drawnAt = now;
      if (this.shownFrame >= 0 && frame > this.shownFrame + 1) this.skippedFrames += frame - this.shownFrame - 1;
      this.showFrame(frame);
      this.shownFrame = frame;
      this.rest = null;            // frames that came after the face began to rest: rest again after them
      this.record(frame, now);
    } else if (this.ended && frame !== null && frame === this.newest) {
      this.easeToRest(now);
    }
    this.drawHeads(() => 0);
    if (!this.nextReadout || now >= this.nextReadout) { this.nextReadout = now + READOUT_MS; this.updateReadout(now); }
  }

  record(frame, now) {
    // (stream frame index, page time it was drawn); mic-to-face = drawn - (recording start + index / fps)
    this.shown.push([frame, now]);
    if (this.shown.length > SHOWN_KEPT) this.shown.shift();
    // the frame holds the audio recorded (origin + frame / fps) s after the microphone's first sample
    const heardAt = this.microphone ? this.microphone.firstSampleAt : null;
    if (heardAt !== null && this.info.origin != null) {
      this.latencies.push([now, now - (heardAt + 1000 * (this.info.origin + frame / FPS))]);
    }
    this.draws.push(now);
  }

  easeToRest(now) {  // after Stop: from the last frame to the face at rest, looking ahead
    if (!this.rest) {
      this.rest = { from: Float32Array.from(this.head.weights), turn: Float32Array.from(this.head.angles), at: now };
    }
    if (this.rest.done) return;
    const t = Math.min(1, (now - this.rest.at) / (REST_SECONDS * 1000));
    const k = 1 - t * t * (3 - 2 * t);
    this.head.showWeights(this.rest.from.map((w) => w * k), this.rest.turn.map((a) => a * k));
    this.rest.done = t >= 1;
    if (this.rest.done && this.scale < 1) {   // a still head is drawn sharp again; the next Record starts
      this.streamingScale = this.scale;      // from the resolution streaming needed (not lowered again over seconds)
      this.scale = 1;
      this.resize();
    }
  }

  drawRate(now) {
    this.draws = this.draws.filter((t) => now - t < 2000);
    const span = this.draws.length > 1 ? now - this.draws[0] : 0;
    return span > 500 ? (1000 * (this.draws.length - 1)) / span : null;
  }

  figures(now) {
    this.latencies = this.latencies.filter(([t]) => now - t < LATENCY_WINDOW_MS);
    const ms = this.latencies.map(([, v]) => v);
    return { latencyMs: percentile(ms, 0.5), latencyP95Ms: percentile(ms, 0.95), fps: this.drawRate(now),
             skipped: this.info.skipped || 0 };
  }

  updateReadout(now) {
    if (this.problemText) return this.setReadout(this.problemText);
    const f = this.figures(now);
    if (f.fps !== null && !this.ended && f.fps < (this.software ? SOFTWARE_FPS - 2 : TARGET_FPS)) this.lowerResolution();   // too few drawn while frames flow
    if (this.newest < 0 && !this.ended) {
      if (this.message) this.setReadout(this.message);
      else if (this.info.heard != null) {
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

  api(head) {
    const viewer = this, base = super.api(head);
    return {
      ...base,
      play: () => Promise.resolve(),      // a live stream plays by itself
      pause: () => {},
      seek: () => {},
      state: () => ({
        frame: Math.max(0, viewer.shownFrame), frames: viewer.newest + 1, time: Math.max(0, viewer.shownFrame) / FPS,
        playing: viewer.newest >= 0 && !viewer.ended, weights: Array.from(head.weights),
        head: Array.from(head.angles), label: "Live",
        missing: viewer.missing, ready: Boolean(head.mesh),
      }),
      diagnostics: () => {
        const f = viewer.figures(performance.now());
        return {
          ...base.diagnostics(),
          live: { received: viewer.received, dropped: viewer.skippedFrames, queued: Math.max(0, viewer.newest - viewer.shownFrame),
                  shown: viewer.shown.slice(), latencyMs: f.latencyMs, latencyP95Ms: f.latencyP95Ms, fps: f.fps,
                  skipped: f.skipped, ended: viewer.ended, resting: Boolean(viewer.rest && viewer.rest.done),
                  readout: viewer.readout.textContent, origin: viewer.info.origin ?? null, software: viewer.software,
                  antialias: viewer.renderer.getContextAttributes().antialias,
                  microphone: viewer.microphone ? { firstSampleAt: viewer.microphone.firstSampleAt,
                    uploads: viewer.microphone.uploads, failures: viewer.microphone.failures,
                    sent: viewer.microphone.sent, rate: viewer.microphone.rate || null,
                    followed: viewer.microphone.followed, cadence: viewer.microphone.cadence } : null },
        };
      },
    };
  }
}

// Called by the gr.HTML component's js_on_load (demo/viewer.py: html_options with LIVE_MODULE).
export function mount(root, props, watch) {   // props: value, mesh, record and stop (the buttons' selectors)
  mountStage(LiveViewer, root, props, watch);
}
