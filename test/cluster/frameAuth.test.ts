// Per-frame authentication (frameAuth.ts) as pure code: a frame passes only unaltered,
// under the sender's direction key, in the order it was sent, with none missing before
// it; after one bad frame nothing passes. The handshake gives both ends matching keys.
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FrameOpener, FrameSealer, tagBytes } from "../../cluster/frameAuth.js";
import { sessionKeyBytes } from "../../cluster/handshake.js";

const key = (): Uint8Array => randomBytes(sessionKeyBytes);

function sealAll(sealKey: Uint8Array, frames: readonly Uint8Array[]): Buffer[] {
  const sealer = new FrameSealer(sealKey);
  return frames.map((frame) => sealer.seal([frame], frame.length));
}

describe("frame tags", () => {
  it("frames sealed in order open in order, to the same bytes; parts are one frame", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 20 }), (frames) => {
        const linkKey = key();
        const opener = new FrameOpener(linkKey);
        for (const [index, wire] of sealAll(linkKey, frames).entries()) {
          expect(wire.length).toBe(frames[index]!.length + tagBytes);
          expect(Buffer.from(opener.open(wire) ?? []).equals(Buffer.from(frames[index]!))).toBe(true);
        }
      }),
    );
    const linkKey = key();
    const split = new FrameSealer(linkKey).seal([Uint8Array.of(1, 2), Uint8Array.of(3)], 3);
    expect(Buffer.from(new FrameOpener(linkKey).open(split) ?? []).equals(Buffer.from([1, 2, 3]))).toBe(true);
  });

  it("refuses a flipped bit anywhere, a forged, replayed, reordered or reflected frame, and one after a dropped frame", () => {
    const linkKey = key();
    const frames = [Buffer.from("first"), Buffer.from("second"), Buffer.from("third")];
    const wires = sealAll(linkKey, frames);
    const openAfter = (ok: readonly Buffer[], candidate: Uint8Array): Uint8Array | null => {
      const opener = new FrameOpener(linkKey);
      for (const wire of ok) expect(opener.open(wire)).not.toBeNull();
      return opener.open(candidate);
    };
    for (let bit = 0; bit < wires[0]!.length * 8; bit++) {
      const flipped = Buffer.from(wires[0]!);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      expect(openAfter([], flipped), `bit ${bit}`).toBeNull();
    }
    expect(openAfter([], Buffer.concat([frames[0]!, randomBytes(tagBytes)]))).toBeNull(); // forged
    expect(openAfter([wires[0]!], wires[0]!)).toBeNull(); // replayed
    expect(openAfter([], wires[1]!)).toBeNull(); // reordered, or the first dropped
    expect(openAfter([wires[0]!], wires[2]!)).toBeNull(); // the second dropped
    expect(openAfter([], Uint8Array.of(1, 2, 3))).toBeNull(); // shorter than a tag
    expect(new FrameOpener(key()).open(wires[0]!)).toBeNull(); // another link's or direction's key
  });

  it("after one bad frame, even good ones are refused: the link is no longer the sender's", () => {
    const linkKey = key();
    const wires = sealAll(linkKey, [Buffer.from("a"), Buffer.from("b")]);
    const opener = new FrameOpener(linkKey);
    expect(opener.open(Buffer.from("junk that is longer than a tag, surely"))).toBeNull();
    expect(opener.open(wires[0]!)).toBeNull();
    expect(opener.open(wires[1]!)).toBeNull();
  });

  it("insists on full-length keys", () => {
    expect(() => new FrameSealer(randomBytes(16))).toThrow(RangeError);
    expect(() => new FrameOpener(randomBytes(33))).toThrow(RangeError);
  });
});
