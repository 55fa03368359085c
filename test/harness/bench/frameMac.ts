// What the per-frame tag of a peer link costs (cluster/frameAuth.ts): frames/s and CPU
// per frame through a real ws connection on loopback, with and without the tag, and
// the tag alone (seal + open, no I/O).
// Usage: npm run build && node dist/test/harness/bench/frameMac.js [--frames 20000] [--rounds 3]
// Both ends run in this one process, so "CPU per frame" is the sender's plus the
// receiver's work: one seal and one open per frame with the tag, as on a real link.
// Rounds alternate the two modes; each line is the median of the rounds.
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import WebSocket, { WebSocketServer } from "ws";
import { FrameOpener, FrameSealer } from "../../../cluster/frameAuth.js";
import { sessionKeyBytes } from "../../../cluster/handshake.js";

const { values } = parseArgs({ options: { frames: { type: "string", default: "20000" }, rounds: { type: "string", default: "3" } } });
const framesPerRun = Number(values.frames);
const rounds = Number(values.rounds);
/** Frame sizes: one ack, a few states, a busy turn, the outbox cap (outboxBytesMax). */
const frameSizes = [64, 512, 16 * 1024, 256 * 1024];
/** Frames the sender queues before it yields to let the receiver read. */
const framesPerTurn = 64;
const wsOptions = { perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 } as const;

interface Measure {
  readonly framesPerSecond: number;
  /** Microseconds of CPU (user + system) per frame, both ends. */
  readonly cpuMicrosPerFrame: number;
}

async function pair(): Promise<{ sender: WebSocket; receiver: WebSocket; close: () => Promise<void> }> {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0, ...wsOptions });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const receiverReady = new Promise<WebSocket>((resolve) => server.once("connection", resolve));
  const sender = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, wsOptions);
  await new Promise<void>((resolve) => sender.once("open", () => resolve()));
  const receiver = await receiverReady;
  receiver.binaryType = "nodebuffer";
  const close = async (): Promise<void> => {
    sender.terminate();
    receiver.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { sender, receiver, close };
}

/** Sends `framesPerRun` frames of `bytes` from sender to receiver, tagged or not. */
async function run(bytes: number, tagged: boolean): Promise<Measure> {
  const { sender, receiver, close } = await pair();
  const key = randomBytes(sessionKeyBytes);
  const sealer = new FrameSealer(key);
  const opener = new FrameOpener(key);
  const payload = randomBytes(bytes);
  let received = 0;
  const done = new Promise<void>((resolve) =>
    receiver.on("message", (data: Buffer) => {
      if (tagged && opener.open(data) === null) throw new Error("a frame failed its tag");
      if (++received === framesPerRun) resolve();
    }),
  );
  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  let sent = 0;
  while (sent < framesPerRun) {
    for (let index = 0; index < framesPerTurn && sent < framesPerRun; index++, sent++) {
      const frame = tagged ? sealer.seal([payload], payload.length) : payload;
      sender.send(frame, { binary: true, compress: false, fin: true });
    }
    // Let the receiver read: wait while much is still in flight.
    while (sender.bufferedAmount > 4 * 1024 * 1024 || sent - received > 4 * framesPerTurn) await new Promise((resolve) => setImmediate(resolve));
  }
  await done;
  const elapsedMs = performance.now() - startedAt;
  const cpu = process.cpuUsage(cpuBefore);
  await close();
  return { framesPerSecond: (framesPerRun / elapsedMs) * 1000, cpuMicrosPerFrame: (cpu.user + cpu.system) / framesPerRun };
}

/** Seal + open of `framesPerRun` frames of `bytes`, no I/O: the tag's own CPU. */
function tagOnly(bytes: number): number {
  const key = randomBytes(sessionKeyBytes);
  const sealer = new FrameSealer(key);
  const opener = new FrameOpener(key);
  const payload = randomBytes(bytes);
  const cpuBefore = process.cpuUsage();
  for (let index = 0; index < framesPerRun; index++) {
    if (opener.open(sealer.seal([payload], payload.length)) === null) throw new Error("a frame failed its tag");
  }
  const cpu = process.cpuUsage(cpuBefore);
  return (cpu.user + cpu.system) / framesPerRun;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const rows: string[] = [];
for (const bytes of frameSizes) {
  const plain: Measure[] = [];
  const tagged: Measure[] = [];
  const tagCpu: number[] = [];
  await run(bytes, false); // warm-up
  await run(bytes, true);
  for (let round = 0; round < rounds; round++) {
    plain.push(await run(bytes, false));
    tagged.push(await run(bytes, true));
    tagCpu.push(tagOnly(bytes));
  }
  const plainFps = median(plain.map((measure) => measure.framesPerSecond));
  const taggedFps = median(tagged.map((measure) => measure.framesPerSecond));
  const plainCpu = median(plain.map((measure) => measure.cpuMicrosPerFrame));
  const taggedCpu = median(tagged.map((measure) => measure.cpuMicrosPerFrame));
  rows.push(
    `| ${bytes.toLocaleString("en")} B | ${Math.round(plainFps).toLocaleString("en")} | ${Math.round(taggedFps).toLocaleString("en")} | ` +
      `${(taggedFps / plainFps).toFixed(2)} | ${plainCpu.toFixed(1)} | ${taggedCpu.toFixed(1)} | ${(taggedCpu / plainCpu).toFixed(2)} | ${median(tagCpu).toFixed(1)} |`,
  );
  console.error(`done: ${bytes} B`);
}
console.log(`${framesPerRun} frames a run, medians of ${rounds} rounds, Node ${process.version}`);
console.log("| frame | frames/s plain | frames/s tagged | ratio | CPU µs/frame plain | tagged | ratio | seal + open alone, µs |");
console.log("|---|---|---|---|---|---|---|---|");
for (const row of rows) console.log(row);
