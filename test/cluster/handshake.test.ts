// The link handshake as pure functions: both sides authenticate only with the same
// secret, the secret never travels, and a proof cannot be replayed into another
// session, reflected back to its maker, or moved to other identities. Any bytes a
// remote sends give a "refused" step, never an exception.
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import {
  type Credentials,
  type HandshakeFrame,
  type HandshakeState,
  type HandshakeStep,
  type Transcript,
  bytesPerHandshakeFrameMax,
  decodeHandshake,
  encodeHandshake,
  handshakeStep,
  handshakeVersion,
  nonceBytes,
  proofIsValid,
  proofOf,
  sessionKeyBytes,
  sessionKeyOf,
  startAcceptor,
  startDialer,
} from "../../cluster/handshake.js";
import { ProtocolError } from "../../cluster/messages.js";

const secret = "correct horse battery staple";
const dialerSelf: Credentials = { replicaId: "a", actor: "a/1111", secret };
const acceptorSelf: Credentials = { replicaId: "b", actor: "b/2222", secret };
const nonce = (): Uint8Array => randomBytes(nonceBytes);
/** The acceptor's configured peers. */
const acceptsA = (replicaId: string): boolean => replicaId === "a";

function reply(step: HandshakeStep): { frame: Uint8Array; next: HandshakeState } {
  if (step.kind !== "reply") throw new Error(`expected a reply, got ${JSON.stringify(step)}`);
  return step;
}

function authenticated(step: HandshakeStep): Extract<HandshakeStep, { kind: "authenticated" }> {
  if (step.kind !== "authenticated") throw new Error(`expected authenticated, got ${JSON.stringify(step)}`);
  return step;
}

function refusedReason(step: HandshakeStep): string {
  if (step.kind !== "refused") throw new Error(`expected a refusal, got ${step.kind}`);
  return step.reason;
}

/** One full exchange; returns every frame sent and both results. */
function runHandshake(dialer: Credentials, acceptor: Credentials, expectedPeer = acceptor.replicaId) {
  const { hello, state: dialerState } = startDialer(dialer, expectedPeer, nonce());
  const acceptorState = startAcceptor(acceptor, nonce(), acceptsA);
  const challenge = reply(handshakeStep(acceptorState, hello));
  const dialerStep = handshakeStep(dialerState, challenge.frame);
  if (dialerStep.kind !== "reply") return { frames: [hello, challenge.frame], dialer: dialerStep, acceptor: null };
  const acceptorResult = handshakeStep(challenge.next, dialerStep.frame);
  if (acceptorResult.kind !== "authenticated" || acceptorResult.frame === null) {
    return { frames: [hello, challenge.frame, dialerStep.frame], dialer: dialerStep, acceptor: acceptorResult };
  }
  const dialerResult = handshakeStep(dialerStep.next, acceptorResult.frame);
  return { frames: [hello, challenge.frame, dialerStep.frame, acceptorResult.frame], dialer: dialerResult, acceptor: acceptorResult };
}

describe("handshake frames", () => {
  it("round-trip every frame type", () => {
    const frames: HandshakeFrame[] = [
      { type: "hello", replicaId: "a", actor: "a/1", nonce: nonce() },
      { type: "challenge", replicaId: "b".repeat(128), actor: "b/2", nonce: nonce(), proof: randomBytes(32) },
      { type: "proof", proof: randomBytes(32) },
      { type: "welcome" },
    ];
    for (const frame of frames) {
      const bytes = encodeHandshake(frame);
      expect(bytes.length).toBeLessThanOrEqual(bytesPerHandshakeFrameMax);
      const decoded = decodeHandshake(bytes);
      expect(Buffer.from(encodeHandshake(decoded)).equals(Buffer.from(bytes))).toBe(true);
      expect(decoded.type).toBe(frame.type);
    }
  });

  it("reject forged fields with a ProtocolError", () => {
    const packr = new Packr({ useRecords: false, mapsAsObjects: false, moreTypes: false });
    const forged: unknown[] = [
      [handshakeVersion + 1, 3],
      [handshakeVersion, 9],
      [handshakeVersion, 3, "extra"],
      [handshakeVersion, 0, "a", "a/1", randomBytes(31)],
      [handshakeVersion, 0, "", "a/1", nonce()],
      [handshakeVersion, 0, "x".repeat(129), "a/1", nonce()],
      [handshakeVersion, 0, 7, "a/1", nonce()],
      [handshakeVersion, 2, "not bytes"],
      { type: "welcome" },
      "welcome",
    ];
    for (const fields of forged) expect(() => decodeHandshake(packr.pack(fields))).toThrow(ProtocolError);
    expect(() => decodeHandshake(new Uint8Array(bytesPerHandshakeFrameMax + 1))).toThrow(ProtocolError);
    expect(() => decodeHandshake(new Uint8Array([0xc1]))).toThrow(ProtocolError);
  });

  it("any bytes at any step are refused or advance, never throw", () => {
    const states: HandshakeState[] = [
      startDialer(dialerSelf, "b", nonce()).state,
      startAcceptor(acceptorSelf, nonce(), acceptsA),
      reply(handshakeStep(startAcceptor(acceptorSelf, nonce(), acceptsA), startDialer(dialerSelf, "b", nonce()).hello)).next,
    ];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.constantFrom(...states), (bytes, state) => {
        const step = handshakeStep(state, bytes);
        expect(step.kind).toBe("refused");
      }),
      { numRuns: 2000 },
    );
  });
});

describe("handshake (mutual HMAC challenge-response)", () => {
  it("authenticates both sides with the same secret, each learning the other's id and actor", () => {
    const result = runHandshake(dialerSelf, acceptorSelf);
    expect(authenticated(result.acceptor as HandshakeStep)).toMatchObject({ peer: "a", actor: "a/1111" });
    expect(authenticated(result.dialer)).toMatchObject({ peer: "b", actor: "b/2222", frame: null });
  });

  it("gives both sides the same two session keys, one per direction, fresh per handshake and never on the wire", () => {
    const first = runHandshake(dialerSelf, acceptorSelf);
    const dialerKeys = authenticated(first.dialer).keys;
    const acceptorKeys = authenticated(first.acceptor as HandshakeStep).keys;
    const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
    expect(hex(dialerKeys.send)).toBe(hex(acceptorKeys.receive));
    expect(hex(dialerKeys.receive)).toBe(hex(acceptorKeys.send));
    expect(hex(dialerKeys.send)).not.toBe(hex(dialerKeys.receive));
    expect(dialerKeys.send).toHaveLength(sessionKeyBytes);
    const second = authenticated(runHandshake(dialerSelf, acceptorSelf).dialer).keys;
    expect(hex(second.send)).not.toBe(hex(dialerKeys.send));
    for (const frame of first.frames) {
      for (const key of [dialerKeys.send, dialerKeys.receive]) expect(Buffer.from(frame).includes(Buffer.from(key))).toBe(false);
    }
  });

  it("a session key is bound to the secret, its direction and every transcript field", () => {
    const transcript: Transcript = {
      dialerId: "a",
      dialerActor: "a/1",
      dialerNonce: nonce(),
      acceptorId: "b",
      acceptorActor: "b/1",
      acceptorNonce: nonce(),
    };
    const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
    const reference = hex(sessionKeyOf(secret, "dialer", transcript));
    expect(hex(sessionKeyOf(secret, "dialer", transcript))).toBe(reference);
    expect(hex(sessionKeyOf("another secret of 16+", "dialer", transcript))).not.toBe(reference);
    expect(hex(sessionKeyOf(secret, "acceptor", transcript))).not.toBe(reference);
    for (const field of Object.keys(transcript) as (keyof Transcript)[]) {
      const value = transcript[field];
      const changed = { ...transcript, [field]: typeof value === "string" ? `${value}x` : nonce() };
      expect(hex(sessionKeyOf(secret, "dialer", changed)), field).not.toBe(reference);
    }
  });

  it("never puts the secret on the wire", () => {
    const result = runHandshake(dialerSelf, acceptorSelf);
    expect(result.frames).toHaveLength(4);
    for (const frame of result.frames) expect(Buffer.from(frame).includes(Buffer.from(secret))).toBe(false);
  });

  it("a dialer with another secret refuses the acceptor, and never sends a proof", () => {
    const result = runHandshake({ ...dialerSelf, secret: "another secret of 16+ chars" }, acceptorSelf);
    expect(refusedReason(result.dialer)).toMatch(/failed the proof/);
    expect(result.acceptor).toBeNull();
  });

  it("an acceptor with another secret is refused by the dialer", () => {
    const result = runHandshake(dialerSelf, { ...acceptorSelf, secret: "another secret of 16+ chars" });
    expect(refusedReason(result.dialer)).toMatch(/replica b failed the proof/);
  });

  it("an acceptor refuses a forged dialer proof, its own proof reflected back, and a replayed proof", () => {
    const { hello, state } = startDialer(dialerSelf, "b", nonce());
    const challenge = reply(handshakeStep(startAcceptor(acceptorSelf, nonce(), acceptsA), hello));
    const forged = encodeHandshake({ type: "proof", proof: randomBytes(32) });
    expect(refusedReason(handshakeStep(challenge.next, forged))).toMatch(/replica a failed the proof/);

    const challengeFrame = decodeHandshake(challenge.frame);
    if (challengeFrame.type !== "challenge") throw new Error("expected a challenge");
    const reflected = encodeHandshake({ type: "proof", proof: challengeFrame.proof });
    expect(refusedReason(handshakeStep(challenge.next, reflected))).toMatch(/failed the proof/);

    // Record a whole good session, then replay the dialer's hello and proof into a new one.
    const recorded = reply(handshakeStep(state, challenge.frame)).frame;
    expect(authenticated(handshakeStep(challenge.next, recorded)).peer).toBe("a");
    const replayChallenge = reply(handshakeStep(startAcceptor(acceptorSelf, nonce(), acceptsA), hello));
    expect(refusedReason(handshakeStep(replayChallenge.next, recorded))).toMatch(/failed the proof/);
  });

  it("a dialer refuses a replica other than the one it dialed, and its own nonce echoed", () => {
    const result = runHandshake(dialerSelf, { ...acceptorSelf, replicaId: "c" }, "b");
    expect(refusedReason(result.dialer)).toMatch(/dialed replica b but c answered/);

    // A mirror: an "acceptor" answering with the dialer's own nonce, even with a valid proof.
    const dialerNonce = nonce();
    const { state } = startDialer(dialerSelf, "b", dialerNonce);
    const transcript: Transcript = {
      dialerId: "a",
      dialerActor: dialerSelf.actor,
      dialerNonce,
      acceptorId: "b",
      acceptorActor: "b/2222",
      acceptorNonce: dialerNonce,
    };
    const mirror = encodeHandshake({
      type: "challenge",
      replicaId: "b",
      actor: "b/2222",
      nonce: dialerNonce,
      proof: proofOf(secret, "acceptor", transcript),
    });
    expect(refusedReason(handshakeStep(state, mirror))).toMatch(/reflected/);
  });

  it("a dialer to a seed address (id unknown, a join) takes whichever replica answers, but never itself", () => {
    const { hello, state } = startDialer(dialerSelf, null, nonce());
    const acceptorState = startAcceptor({ ...acceptorSelf, replicaId: "c", actor: "c/3333" }, nonce(), acceptsA);
    const challenge = reply(handshakeStep(acceptorState, hello));
    const proof = reply(handshakeStep(state, challenge.frame));
    const acceptorUp = authenticated(handshakeStep(challenge.next, proof.frame));
    const dialerUp = authenticated(handshakeStep(proof.next, acceptorUp.frame!));
    expect([dialerUp.peer, dialerUp.actor]).toEqual(["c", "c/3333"]);
    expect(acceptorUp.peer).toBe("a");

    // A seed address where this replica's own id answers (a copy of it, or itself): refused.
    const dialerNonce = nonce();
    const acceptorNonce = nonce();
    const self = startDialer(dialerSelf, null, dialerNonce);
    const transcript: Transcript = { dialerId: "a", dialerActor: dialerSelf.actor, dialerNonce, acceptorId: "a", acceptorActor: "a/9999", acceptorNonce };
    const ownIdChallenge = encodeHandshake({
      type: "challenge",
      replicaId: "a",
      actor: "a/9999",
      nonce: acceptorNonce,
      proof: proofOf(secret, "acceptor", transcript),
    });
    expect(refusedReason(handshakeStep(self.state, ownIdChallenge))).toMatch(/seed answered with our own replica id a/);
  });

  it("an acceptor refuses a dialer claiming the acceptor's own id, or echoing its nonce", () => {
    const { hello } = startDialer({ ...dialerSelf, replicaId: "b" }, "b", nonce());
    expect(refusedReason(handshakeStep(startAcceptor(acceptorSelf, nonce(), acceptsA), hello))).toMatch(/our own replica id/);
    const acceptorNonce = nonce();
    const mirror = startDialer(dialerSelf, "b", acceptorNonce).hello;
    expect(refusedReason(handshakeStep(startAcceptor(acceptorSelf, acceptorNonce, acceptsA), mirror))).toMatch(/reflected/);
  });

  it("frames out of order are refused", () => {
    const { hello, state: dialerState } = startDialer(dialerSelf, "b", nonce());
    const acceptorState = startAcceptor(acceptorSelf, nonce(), acceptsA);
    const welcome = encodeHandshake({ type: "welcome" });
    const proof = encodeHandshake({ type: "proof", proof: randomBytes(32) });
    expect(refusedReason(handshakeStep(acceptorState, welcome))).toMatch(/expected a hello/);
    expect(refusedReason(handshakeStep(acceptorState, proof))).toMatch(/expected a hello/);
    expect(refusedReason(handshakeStep(dialerState, welcome))).toMatch(/expected a challenge/);
    expect(refusedReason(handshakeStep(dialerState, hello))).toMatch(/expected a challenge/);
    const challenge = reply(handshakeStep(acceptorState, hello));
    expect(refusedReason(handshakeStep(challenge.next, hello))).toMatch(/expected a proof/);
    const awaitingWelcome = reply(handshakeStep(dialerState, challenge.frame)).next;
    expect(refusedReason(handshakeStep(awaitingWelcome, challenge.frame))).toMatch(/expected a welcome/);
  });

  it("a proof is bound to its direction and to every transcript field", () => {
    const transcript: Transcript = {
      dialerId: "a",
      dialerActor: "a/1",
      dialerNonce: nonce(),
      acceptorId: "b",
      acceptorActor: "b/2",
      acceptorNonce: nonce(),
    };
    const proof = proofOf(secret, "dialer", transcript);
    expect(proofIsValid(secret, "dialer", transcript, proof)).toBe(true);
    expect(proofIsValid(secret, "acceptor", transcript, proof)).toBe(false);
    expect(proofIsValid("another secret of 16+ chars", "dialer", transcript, proof)).toBe(false);
    expect(proofIsValid(secret, "dialer", transcript, proof.subarray(0, 31))).toBe(false);
    const changed: Transcript[] = [
      { ...transcript, dialerId: "c" },
      { ...transcript, dialerActor: "a/9" },
      { ...transcript, dialerNonce: nonce() },
      { ...transcript, acceptorId: "c" },
      { ...transcript, acceptorActor: "b/9" },
      { ...transcript, acceptorNonce: nonce() },
      // Swapping the two sides must not give the same proof either.
      {
        dialerId: "b",
        dialerActor: "b/2",
        dialerNonce: transcript.acceptorNonce,
        acceptorId: "a",
        acceptorActor: "a/1",
        acceptorNonce: transcript.dialerNonce,
      },
    ];
    for (const other of changed) expect(proofIsValid(secret, "dialer", other, proof)).toBe(false);
  });

  it("start functions insist on full-length nonces", () => {
    expect(() => startDialer(dialerSelf, "b", randomBytes(nonceBytes - 1))).toThrow(RangeError);
    expect(() => startAcceptor(acceptorSelf, new Uint8Array(0), acceptsA)).toThrow(RangeError);
  });
});
