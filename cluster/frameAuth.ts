// Per-frame authentication of an up link. After the handshake each side holds one
// session key per direction (handshake.ts, sessionKeyOf). Every data frame travels as
//
//   frame bytes ‖ tag,   tag = HMAC-SHA256(key of the sender's direction, sequence ‖ frame bytes)
//
// where `sequence` is the number of frames this direction sent before it (8 bytes, big
// endian), counted by both ends and never sent. So a frame that is altered, forged,
// replayed, reordered, reflected back, or follows a dropped frame fails its check, and
// the receiver closes the link. ws control frames (ping, pong, close) carry no tag:
// what they can do (close a link, keep it looking alive) a man in the middle can do by
// cutting or holding the TCP connection anyway.
import { type KeyObject, createHmac, createSecretKey, timingSafeEqual } from "node:crypto";
import { sessionKeyBytes } from "./handshake.js";

/** The full HMAC-SHA256 output: no truncation to reason about. */
export const tagBytes = 32;
const sequenceBytes = 8;

/** Authenticates the frames one direction of a link sends, in order. */
export class FrameSealer {
  private readonly key: KeyObject;
  private sequence = 0;

  constructor(key: Uint8Array) {
    this.key = keyObjectOf(key);
  }

  /** `parts` back to back (`bytes` in all) as one frame, with its tag appended. */
  seal(parts: readonly Uint8Array[], bytes: number): Buffer {
    const tag = tagOf(this.key, this.sequence, parts);
    this.sequence = nextSequence(this.sequence);
    return Buffer.concat([...parts, tag], bytes + tagBytes);
  }
}

/** Checks the frames one direction of a link receives, in order. */
export class FrameOpener {
  private readonly key: KeyObject;
  private sequence = 0;
  private failed = false;

  constructor(key: Uint8Array) {
    this.key = keyObjectOf(key);
  }

  /**
   * The frame bytes without the tag, or null if the tag is wrong. After one null
   * every later frame is null too: the stream is no longer the sender's.
   */
  open(wire: Uint8Array): Uint8Array | null {
    if (this.failed || wire.length < tagBytes) return this.fail();
    const frame = wire.subarray(0, wire.length - tagBytes);
    const expected = tagOf(this.key, this.sequence, [frame]);
    if (!timingSafeEqual(expected, wire.subarray(wire.length - tagBytes))) return this.fail();
    this.sequence = nextSequence(this.sequence);
    return frame;
  }

  private fail(): null {
    this.failed = true;
    return null;
  }
}

function keyObjectOf(key: Uint8Array): KeyObject {
  if (key.length !== sessionKeyBytes) throw new RangeError(`a session key must be ${sessionKeyBytes} bytes`);
  return createSecretKey(key);
}

function tagOf(key: KeyObject, sequence: number, parts: readonly Uint8Array[]): Buffer {
  const header = Buffer.allocUnsafe(sequenceBytes);
  header.writeUInt32BE(Math.floor(sequence / 2 ** 32), 0);
  header.writeUInt32BE(sequence >>> 0, 4);
  const hmac = createHmac("sha256", key).update(header);
  for (const part of parts) hmac.update(part);
  return hmac.digest();
}

function nextSequence(sequence: number): number {
  // 2^53 frames is ages at any rate we reach; a link is replaced long before.
  if (sequence >= Number.MAX_SAFE_INTEGER) throw new RangeError("frame sequence exhausted: replace the link");
  return sequence + 1;
}
