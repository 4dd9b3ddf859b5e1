// The Live tab's microphone: recorded on the audio thread (capture_worklet.js) from the click on
// Record, and uploaded as raw 16-bit PCM to the stream's address (demo/live_tab.py: receive_audio)
// one upload at a time: while an upload is on its way, what is recorded meanwhile is held here and
// goes with the next, so no audio is lost however slow the server or the network is. Each upload
// says where its first sample lies in the recording (`start`); one that fails is sent again, and
// the server hears each sample once. Every answer (the frames decoded since the last upload) goes
// to `onAnswer`; a refusal (the stream ended, bad audio) to `onProblem`, and recording stops.
// Beside the uploads the page asks for frames as soon as they are decoded (`follow`: the server
// answers when it has some, within a couple of seconds), so a block does not wait for the answer
// to a later upload; those answers go to `onAnswer` too.
// When the server has said when its worker decodes (`cadence`, demo/live.py: LiveSession.cadence),
// an upload goes as soon as the recording reaches the next of those points, and not between them:
// a hop's audio then reaches the server as soon as the audio thread hands it over instead of
// waiting for an upload that was already on its way, and fewer uploads leave the CPU to the rest.
const UPLOAD_MS = 100;            // until the cadence is known: an upload at most this often
const FOLLOW_RETRY_MS = 500;      // after a request for frames that failed on the way
const MAX_HELD_SECONDS = 30;      // recorded but not taken by the server: more means it is gone

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Microphone {
  constructor(onAnswer, onProblem) {
    this.onAnswer = onAnswer;
    this.onProblem = onProblem;
    this.held = [];               // Float32Array blocks recorded and not yet taken by the server
    this.heldSamples = 0;
    this.sent = 0;                // samples the server has taken (the next upload's start)
    this.url = null;
    this.busy = false;
    this.closed = false;
    this.firstSampleAt = null;    // page time (ms) at which the first recorded sample was heard
    this.uploads = 0;
    this.failures = 0;            // uploads that did not arrive and were sent again
    this.followed = 0;            // answers with frames that came by following (not with an upload)
    this.cadence = null;          // {start, every, after} in samples: when the server decodes (see above)
    this.lastUploadAt = 0;
    this.wake = null;             // wakes the upload loop when a block comes in
  }

  async open() {
    this.stream = await navigator.mediaDevices.getUserMedia(
      { audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule(new URL("./capture_worklet.js", import.meta.url));
    if (this.closed) return this.close();
    this.rate = this.context.sampleRate;
    const source = this.context.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.context, "dt-capture");
    this.node.port.onmessage = (event) => this.hold(event.data);
    source.connect(this.node);
    this.node.connect(this.context.destination);     // silent; pulls the node on every browser
    await this.context.resume();
  }

  hold(block) {
    if (this.closed) return;
    if (this.firstSampleAt === null) this.firstSampleAt = performance.now() - (1000 * block.length) / this.rate;
    this.held.push(block);
    this.heldSamples += block.length;
    if (this.heldSamples > MAX_HELD_SECONDS * this.rate) this.fail("The server stopped taking the microphone's audio.");
    if (this.wake) this.wake();
  }

  // How far (in samples) the recording must reach for the server's next decode after what it has taken.
  nextCadence() {
    const { start, every, after } = this.cadence;
    const k = Math.max(1, Math.floor((this.sent - start - after) / every) + 1);
    return start + Math.ceil(k * every - 1e-6) + after;
  }
  uploadDue(now) {
    if (this.busy || !this.url || !this.heldSamples) return false;
    if (this.cadence) return this.sent + this.heldSamples >= this.nextCadence();
    return now - this.lastUploadAt >= UPLOAD_MS;
  }

  // Upload to `url` (page-relative) from now on.
  sendTo(url) {
    this.url = url;
    if (!this.uploading && !this.closed) this.keepUploading();
  }

  async keepUploading() {
    this.uploading = true;
    while (!this.closed) {
      if (this.uploadDue(performance.now())) await this.upload();
      else await new Promise((resolve) => { this.wake = resolve; setTimeout(resolve, UPLOAD_MS / 4); });
      this.wake = null;
    }
    this.uploading = false;
  }

  // Ask `url` (page-relative) for frames, again and again, until the stream ends or is closed.
  async follow(url) {
    if (this.following) return;
    this.following = true;
    while (!this.closed) {
      try {
        const response = await fetch(new URL(url, document.baseURI));
        if (response.status === 400) break;          // the stream has ended (Stop, or the uploads say why)
        if (response.ok) {
          const answer = await response.json();
          if (answer.frames) this.followed += 1;
          this.onAnswer(answer);
        } else await sleep(FOLLOW_RETRY_MS);
      } catch (err) {
        await sleep(FOLLOW_RETRY_MS);
      }
    }
    this.following = false;
  }

  async upload() {
    if (this.busy || this.closed || !this.url || !this.held.length) return;
    const blocks = this.held, count = this.heldSamples, start = this.sent;
    this.held = [];
    this.heldSamples = 0;
    const pcm = new Int16Array(count);
    let at = 0;
    for (const block of blocks) {
      for (let i = 0; i < block.length; i++) pcm[at + i] = Math.max(-32768, Math.min(32767, Math.round(block[i] * 32768)));
      at += block.length;
    }
    this.busy = true;
    this.lastUploadAt = performance.now();
    try {
      const address = new URL(`${this.url}?rate=${this.rate}&start=${start}`, document.baseURI);
      const response = await fetch(address, { method: "POST", body: pcm.buffer,
                                              headers: { "Content-Type": "application/octet-stream" } });
      const answer = await response.json().catch(() => ({ error: `The server answered ${response.status}.` }));
      if (!response.ok) return this.fail(answer.error || `The server answered ${response.status}.`);
      this.sent = start + count;
      this.uploads += 1;
      this.onAnswer(answer);
    } catch (err) {                // not sent or no answer: the same audio goes again, with what came since
      this.failures += 1;
      this.held = blocks.concat(this.held);
      this.heldSamples += count;
      await sleep(UPLOAD_MS);      // before it goes again
    } finally {
      this.busy = false;
    }
  }

  // Stop: what is recorded goes up (the answers still come), then recording ends.
  async finish() {
    if (this.closed) return;
    const deadline = performance.now() + 3000;
    while (!this.closed && (this.busy || this.held.length) && this.url && performance.now() < deadline) {
      await this.upload();
      await sleep(20);
    }
    this.close();
  }

  fail(message) {
    if (this.closed) return;
    this.close();
    this.onProblem(message);
  }

  close() {
    this.closed = true;
    if (this.node) this.node.port.onmessage = null;
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    if (this.context && this.context.state !== "closed") this.context.close().catch(() => {});
  }
}
