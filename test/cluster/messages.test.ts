// The peer message codec: every message type round-trips, frames of several
// messages decode in order, and anything else is a ProtocolError, never a crash.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type PeerMessage, ProtocolError, decodeFrame, encodeMessage, protocolVersion, refusalMessageLengthMax } from "../../cluster/messages.js";
import { idLengthMax } from "../../crdt/codec.js";
import { packr } from "../../crdt/msgpack.js";

const samples: PeerMessage[] = [
  {
    type: "states",
    seq: 7,
    entries: [
      ["i:1", Buffer.from([1, 2])],
      ["o:abc", Buffer.from([3])],
    ],
  },
  { type: "states", seq: 0, entries: [["u:2", Buffer.from([4])]], batch: 8 },
  { type: "ack", seq: 9 },
  { type: "syncRequest", cursor: 0, mergedOnly: false },
  {
    type: "syncRequest",
    cursor: 3,
    mergedOnly: true,
    known: [
      ["r2/0a1b", 40],
      ["r3/9f", 2],
    ],
  },
  { type: "syncDone", upTo: 12 },
  {
    type: "rightsRequest",
    requestId: 3,
    needs: [
      ["u:5", 10],
      ["o:x", 1],
    ],
  },
  { type: "rightsGrant", requestId: 3, granted: [["u:5", 12]] },
  { type: "membership", sync: Buffer.from([9, 9]) },
  { type: "drainSeen", upTo: 41, retired: true },
  { type: "checkoutForward", requestId: 5, orderId: "o-17" },
  { type: "checkoutAnswer", requestId: 5, refusal: null },
  { type: "checkoutAnswer", requestId: 6, refusal: { reason: "insufficient", message: "not enough stock of item 3" } },
];

describe("peer messages", () => {
  it("round-trip every type, alone and as one frame", () => {
    for (const message of samples) expect(decodeFrame(encodeMessage(message))).toEqual([message]);
    const frame = Buffer.concat(samples.map(encodeMessage));
    expect(decodeFrame(frame)).toEqual(samples);
  });

  it("refuse a frame whose last message is cut short, or which is empty", () => {
    const frame = Buffer.concat(samples.map(encodeMessage));
    expect(() => decodeFrame(frame.subarray(0, frame.length - 1))).toThrow(ProtocolError);
    expect(() => decodeFrame(new Uint8Array())).toThrow(ProtocolError);
  });

  it("refuse keys that are not state keys, negative counts and oversize lists", () => {
    const bad = [
      encodeMessage({ type: "states", seq: 1, entries: [["~identity", Buffer.from([1])]] }),
      encodeMessage({ type: "ack", seq: -1 }),
      encodeMessage({ type: "syncRequest", cursor: 0, mergedOnly: true, known: Array.from({ length: 65 }, (_, index) => [`r${index}/x`, 1] as const) }),
      encodeMessage({ type: "syncRequest", cursor: 0, mergedOnly: true, known: [["", 1]] }),
      encodeMessage({ type: "rightsRequest", requestId: 1, needs: Array.from({ length: 1025 }, (_, index) => [`i:${index}`, 1] as const) }),
    ];
    for (const bytes of bad) expect(() => decodeFrame(bytes)).toThrow(ProtocolError);
  });

  it("refuse a forwarded checkout without a valid order id, and an answer with an unknown reason or an oversize message", () => {
    const code = (type: string) =>
      ["states", "ack", "syncRequest", "syncDone", "rightsRequest", "rightsGrant", "membership", "drainSeen", "checkoutForward", "checkoutAnswer"].indexOf(
        type,
      );
    const bad = [
      packr.pack([protocolVersion, code("checkoutForward"), 1, ""]),
      packr.pack([protocolVersion, code("checkoutForward"), 1, "o".repeat(idLengthMax + 1)]),
      packr.pack([protocolVersion, code("checkoutForward"), 1, 7]),
      packr.pack([protocolVersion, code("checkoutAnswer"), 1, ["stolen", "all yours"]]),
      packr.pack([protocolVersion, code("checkoutAnswer"), 1, ["insufficient"]]),
      packr.pack([protocolVersion, code("checkoutAnswer"), 1, ["insufficient", "x".repeat(refusalMessageLengthMax + 1)]]),
      packr.pack([protocolVersion, code("checkoutAnswer"), 1, "paid"]),
    ];
    for (const bytes of bad) expect(() => decodeFrame(bytes)).toThrow(ProtocolError);
    const longest = { type: "checkoutAnswer", requestId: 2, refusal: { reason: "paid", message: "x".repeat(refusalMessageLengthMax) } } as const;
    expect(decodeFrame(encodeMessage(longest))).toEqual([longest]);
  });

  it("decode arbitrary bytes to valid messages or a ProtocolError, nothing else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          for (const message of decodeFrame(bytes)) expect(typeof message.type).toBe("string");
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
