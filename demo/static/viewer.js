// The 3D heads of a take or a comparison: ARKit-52 curves drawn on the avatar's morph targets
// with three.js, locked to the audio's clock. One ViewerGrid per page component (the Generate
// take, the Compare grid): its heads share one clock, one play button, one seek bar and the
// stage's one WebGL renderer (stage.js). The Live tab's head is live_viewer.js.
// Every head is reachable as window.diffusionTalkerViewers[i] with play(), pause(), seek(seconds)
// and state(); diagnostics() holds counters for tests and measurements, not an API.
import { decodeCurves, decodeHead, loadMesh } from "./heads.js";
import { Stage, mountStage } from "./stage.js";

const TARGET_FPS = 24;      // below this while playing, the canvas renders fewer pixels (software WebGL)

// The clock: the audio element's time while it can play, else a wall clock (no sound). A second
// element loads the next take's track while the model computes it (preload), so that the head and
// the sound start together as soon as the curves arrive; the shown take keeps its own track until then.
class Clock {
  constructor(audio, spare) {
    this.audio = audio;         // the shown take's track (class dt-current)
    this.spare = spare;         // the next take's, loading
    this.duration = 0;
    this.useAudio = false;
    this.offset = 0;
    this.startedAt = null;      // performance.now() when the wall clock started
    for (const element of [audio, spare]) {
      element.addEventListener("error", () => { if (this.useAudio && element === this.audio) this.fallBack(); });
    }
  }
  load(url, duration) {
    this.pause();
    this.duration = duration;
    this.offset = 0;
    this.useAudio = Boolean(url);
    if (!url) { this.audio.removeAttribute("src"); return; }
    const href = new URL(url, document.baseURI).href;
    if (this.spare.src === href && !this.spare.error) {   // loaded while the take was computed
      [this.audio, this.spare] = [this.spare, this.audio];
      this.audio.classList.add("dt-current");
      this.spare.classList.remove("dt-current");
    } else if (this.audio.src !== href || this.audio.error) this.audio.src = href;
    this.audio.currentTime = 0;
  }
  preload(url) {
    const href = new URL(url, document.baseURI).href;
    if (this.audio.src !== href && this.spare.src !== href) this.spare.src = href;
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

class ViewerGrid extends Stage {
  constructor(root, props) {
    super(root, {
      toolbar: `
        <button type="button" class="dt-play" aria-label="Play" disabled>Play</button>
        <input type="range" class="dt-seek" min="0" max="0" step="0.001" value="0" aria-label="Seek" disabled>
        <span class="dt-time">0.00 / 0.00 s</span>`,
      below: `<audio class="dt-audio dt-current" preload="auto"></audio><audio class="dt-audio" preload="auto"></audio>`,
    });
    this.pace = { draws: 0, since: null };
    this.fps = 30;
    this.frames = 0;
    this.playButton = root.querySelector(".dt-play");
    this.seekBar = root.querySelector(".dt-seek");
    this.timeLabel = root.querySelector(".dt-time");
    const [audio, spare] = root.querySelectorAll(".dt-audio");
    this.clock = new Clock(audio, spare);
    this.playButton.addEventListener("click", () => (this.clock.playing ? this.pause() : this.play()));
    this.seekBar.addEventListener("input", () => this.seek(Number(this.seekBar.value)));
    // a new request pauses the shown take: its frames would compete with the server for the CPU
    this.onClick = (event) => { if (props.pauseOn && event.target.closest(props.pauseOn)) this.pause(); };
    document.addEventListener("click", this.onClick, true);
  }
  frameAt(seconds, frames) {
    return Math.max(0, Math.min(frames - 1, Math.floor(seconds * this.fps + 1e-4)));
  }
  // a head is drawn when its frame changes (tick), not on play or pause: a draw holds the page's only
  // thread for 50-100 ms in software WebGL, which the audio and the next request need then
  play() { return this.clock.play(); }
  pause() { this.clock.pause(); }
  seek(seconds) { this.clock.seek(seconds); }

  api(head) {
    const grid = this, base = super.api(head);
    const frame = () => (head.curves ? grid.frameAt(grid.clock.time(), head.frames) : 0);
    return {
      ...base,
      play: () => grid.play(),
      pause: () => grid.pause(),
      seek: (seconds) => grid.seek(seconds),
      state: () => ({
        frame: frame(),
        frames: head.frames,
        time: grid.clock.time(),
        playing: grid.clock.playing,
        weights: Array.from(head.curves ? head.weightsAt(frame()) : new Float32Array(52)),
        head: Array.from(head.curves ? head.anglesAt(frame()) : new Float32Array(3)),
        label: head.label,
        missing: grid.missing,
        ready: Boolean(head.mesh),
      }),
      diagnostics: () => ({ ...base.diagnostics(), clock: grid.clock.useAudio ? "audio" : "wall" }),
    };
  }

  async show(value) {
    if (!value || this.disposed) return;
    const cells = value.cells || [];
    if (!cells.length) {          // a head with no take yet (the page's first view, a new avatar; a take
      if (value.audio) {          // being computed: its audio loads meanwhile, the last take waits)
        this.pause();
        this.clock.preload(value.audio);
        if (this.heads.length) return this.showMesh(value.mesh);
      }
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
    cells.forEach((c, i) => this.heads[i].setCurves(decodeCurves(c.curves, c.frames), c.frames,
      c.head ? decodeHead(c.head, c.frames) : null));
    this.clock.load(value.audio, value.frames / value.fps);
    this.seekBar.max = String(value.frames / value.fps);
    this.seekBar.step = String(1 / value.fps);
    this.seekBar.disabled = this.playButton.disabled = false;
    this.describeMissing();
    if (value.mesh === this.meshUrl && this.heads.every((head) => head.mesh)) {
      this.play();                  // the sound starts before the first draw of the take
      return;
    }
    if (value.mesh !== this.meshUrl) {
      this.meshUrl = null;
      await this.showMesh(value.mesh);
    } else {
      const loaded = await loadMesh(value.mesh);
      this.heads.forEach((head) => { if (!head.mesh) head.setMesh(loaded); });
    }
    this.play();
  }
  keepPace(drew) {  // every 15 draws while playing: too slow -> fewer pixels
    if (!this.clock.playing) { this.pace.since = null; return; }
    const now = performance.now();
    if (this.pace.since === null) { this.pace = { draws: 0, since: now }; return; }
    if (drew) this.pace.draws += 1;
    if (this.pace.draws < 15) return;
    const rate = (1000 * this.pace.draws) / (now - this.pace.since);
    if (rate < Math.min(TARGET_FPS, this.fps * 0.8)) this.lowerResolution();
    this.pace = { draws: 0, since: now };
  }
  describeMissing() {
    this.say(this.missing.length
      ? `This avatar has no morph target for ${this.missing.length} of the 52 channels (left still): ${this.missing.join(", ")}.`
      : "");
  }

  tick() {
    this.clock.tick();
    const t = this.clock.time();
    this.keepPace(this.drawHeads((head) => (head.curves ? this.frameAt(t, head.frames) : 0)));
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
    document.removeEventListener("click", this.onClick, true);
    this.clock.pause();
    super.dispose();
  }
}

// Called by the gr.HTML component's js_on_load (demo/viewer.py: html_options).
export function mount(root, props, watch) {
  mountStage(ViewerGrid, root, props, watch);
}
