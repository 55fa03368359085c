// A WebSocket client over a bare TCP socket, for fuzz tests of the peer port: it
// writes any bytes (frames with any opcode, mask or length, or no framing at all)
// and records what the server sent until the server closes the connection.
import { randomBytes } from "node:crypto";
import { type Socket, connect } from "node:net";

export interface ServerFrame {
  readonly opcode: number;
  readonly payload: Buffer;
}

/** One connection to 127.0.0.1:`port`; `received` grows as the server writes. */
export class RawConnection {
  private buffered = Buffer.alloc(0);
  private upgradeEnd = -1;
  /** Set once the server closed (or reset) the connection. */
  readonly closed: Promise<void>;
  private waiters: (() => void)[] = [];

  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      if (this.buffered.length < 1024 * 1024) this.buffered = Buffer.concat([this.buffered, chunk]);
      for (const waiter of this.waiters.splice(0)) waiter();
    });
    socket.on("error", () => undefined);
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    void this.closed.then(() => {
      for (const waiter of this.waiters.splice(0)) waiter();
    });
  }

  /** `localAddress`: another loopback address (127.0.0.2...) stands for another host. */
  static open(port: number, localAddress?: string): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port, noDelay: true, ...(localAddress === undefined ? {} : { localAddress }) });
      socket.once("connect", () => resolve(new RawConnection(socket)));
      socket.once("error", reject);
    });
  }

  get isClosed(): boolean {
    return this.socket.destroyed || this.socket.readyState === "closed";
  }

  write(bytes: Uint8Array | string): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  /** Everything the server sent, as latin1 text. */
  get receivedText(): string {
    return this.buffered.toString("latin1");
  }

  /** Sends a WebSocket upgrade request for `path` (with `headers`); resolves true on a 101 answer, false if refused or closed. */
  async upgrade(path: string, headers: Readonly<Record<string, string>> = {}): Promise<boolean> {
    const extra = Object.entries(headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join("");
    this.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    );
    await this.until(() => this.buffered.indexOf("\r\n\r\n") >= 0);
    const end = this.buffered.indexOf("\r\n\r\n");
    if (end < 0 || !this.buffered.subarray(0, end).toString("latin1").startsWith("HTTP/1.1 101")) return false;
    this.upgradeEnd = end + 4;
    return true;
  }

  /** The frames the server sent after the upgrade (complete ones only). */
  frames(): ServerFrame[] {
    const frames: ServerFrame[] = [];
    let at = this.upgradeEnd;
    if (at < 0) return frames;
    while (at + 2 <= this.buffered.length) {
      const opcode = this.buffered[at]! & 0x0f;
      let length = this.buffered[at + 1]! & 0x7f;
      let headerBytes = 2;
      if (length === 126) {
        if (at + 4 > this.buffered.length) break;
        length = this.buffered.readUInt16BE(at + 2);
        headerBytes = 4;
      } else if (length === 127) {
        if (at + 10 > this.buffered.length) break;
        length = Number(this.buffered.readBigUInt64BE(at + 2));
        headerBytes = 10;
      }
      if (at + headerBytes + length > this.buffered.length) break;
      frames.push({ opcode, payload: this.buffered.subarray(at + headerBytes, at + headerBytes + length) });
      at += headerBytes + length;
    }
    return frames;
  }

  /** The payload of the `index`-th binary frame from the server, once it came; null if the connection closed first. */
  async binaryFrame(index: number, waitMsMax: number): Promise<Buffer | null> {
    const pick = () => this.frames().filter((frame) => frame.opcode === 2)[index];
    await this.until(() => pick() !== undefined, waitMsMax);
    return pick()?.payload ?? null;
  }

  /** Resolves once `condition` holds, the connection closes, or `waitMsMax` passes. */
  async until(condition: () => boolean, waitMsMax = 5_000): Promise<void> {
    const deadline = Date.now() + waitMsMax;
    while (!condition() && !this.isClosed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** True if the server closed the connection within `waitMsMax`. */
  async closedWithin(waitMsMax: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([this.closed.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), waitMsMax)))]);
    clearTimeout(timer);
    return closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface FrameOptions {
  readonly fin?: boolean;
  /** Clients must mask; a server must refuse an unmasked client frame. */
  readonly masked?: boolean;
  readonly rsv?: number;
}

/** One WebSocket frame as a client writes it (masked unless told otherwise). */
export function encodeFrame(opcode: number, payload: Uint8Array, options: FrameOptions = {}): Buffer {
  const fin = options.fin ?? true;
  const masked = options.masked ?? true;
  const first = (fin ? 0x80 : 0) | (((options.rsv ?? 0) & 0x07) << 4) | (opcode & 0x0f);
  let header: Buffer;
  if (payload.length < 126) header = Buffer.from([first, (masked ? 0x80 : 0) | payload.length]);
  else if (payload.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = first;
    header[1] = (masked ? 0x80 : 0) | 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = (masked ? 0x80 : 0) | 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  if (!masked) return Buffer.concat([header, payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload);
  for (let index = 0; index < body.length; index++) body[index] = body[index]! ^ mask[index % 4]!;
  return Buffer.concat([header, mask, body]);
}
