// Live mode's frames (demo/live.py: live_value): they arrive in bursts as the server decodes
// them and are drawn at their pace (1/fps each) from a short queue; frames a slow page cannot
// draw in time and a queue longer than LIVE_QUEUE are skipped, so the head never falls behind
// the speaker. The grid (viewer.js) asks next() on every animation frame and draws what it gets.
import { decodeCurves } from "./heads.js";

const LIVE_QUEUE = 15;        // live frames waiting at most (0.5 s at 30 fps, 2.5 encoder hops); older ones are skipped
const SHOWN_KEPT = 9000;      // (frame, time) of the last 5 minutes of live frames drawn, for latency

export class LiveFeed {
  constructor(fps) {
    this.fps = fps;
    this.queue = [];
    this.received = 0;
    this.dropped = 0;
    this.next_ = 0;           // page time at which the next frame is due
    this.shown = [];
  }
  push(value) {
    if (!value.frames) return;
    const curves = decodeCurves(value.curves, value.frames);
    const now = performance.now();
    if (!this.queue.length && this.next_ < now) this.next_ = now;   // starved: the clock restarts
    for (let f = 0; f < value.frames; f++) {
      this.queue.push({ index: value.first + f, weights: curves.slice(f * 52, f * 52 + 52) });
    }
    this.received += value.frames;
  }
  // The newest frame whose time has come (a slow page skips frames, never falls behind), or null.
  next() {
    const now = performance.now(), step = 1000 / this.fps;
    if (!this.queue.length || now < this.next_) return null;
    let take = 1 + Math.floor((now - this.next_) / step);
    take = Math.min(this.queue.length, Math.max(take, this.queue.length - LIVE_QUEUE));
    const shown = this.queue.splice(0, take);
    this.dropped += take - 1;
    this.next_ += take * step;
    const frame = shown[take - 1];
    // (stream frame index, page time it was drawn): mic-to-face latency = drawn - (start + index / fps)
    this.shown.push([frame.index, now]);
    if (this.shown.length > SHOWN_KEPT) this.shown.shift();
    return frame.weights;
  }
  stats() {
    return { received: this.received, queued: this.queue.length, dropped: this.dropped, shown: this.shown.slice() };
  }
}
