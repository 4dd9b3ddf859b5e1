// The Live tab's microphone on the audio thread (microphone.js): the input's first channel, passed
// to the page in blocks of BLOCK samples. The audio thread never waits for the page, so a busy
// page loses nothing: its messages only queue. The node's output stays silent.
const BLOCK = 1024;   // 21 ms at 48 kHz: few messages, little delay

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK);
    this.filled = 0;
  }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    let at = 0;
    while (at < channel.length) {
      const n = Math.min(channel.length - at, BLOCK - this.filled);
      this.block.set(channel.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
      if (this.filled === BLOCK) {
        this.port.postMessage(this.block, [this.block.buffer]);
        this.block = new Float32Array(BLOCK);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("dt-capture", Capture);
