// The link handshake: mutual challenge-response over the cluster secret, before any
// replication message. Pure functions (randomness is passed in), its own tiny
// versioned msgpackr encoding, apart from the transport that runs it.
//
//   dialer -> acceptor  hello     [dialerId, dialerActor, dialerNonce]
//   acceptor -> dialer  challenge [acceptorId, acceptorActor, acceptorNonce, proof("acceptor")]
//   dialer -> acceptor  proof     [proof("dialer")]
//   acceptor -> dialer  welcome   []
//
// proof(direction) = HMAC-SHA256(secret, pack([label, version, direction, dialerId,
// dialerActor, dialerNonce, acceptorId, acceptorActor, acceptorNonce])). Each proof is
// bound to both fresh nonces (no replay), to its direction (no reflection: a side's own
// proof is never the one it expects back) and to both identities. The acceptor is up
// once it has checked the dialer's proof, which the dialer only sends after checking
// the acceptor's; the dialer is up on the welcome. The secret never travels.
//
// Session keys: an up link authenticates every later frame (frameAuth.ts) with one
// key per direction, HKDF-SHA256(secret, salt = dialerNonce ‖ acceptorNonce, info =
// [label, version, direction, both ids, both actors]). Fresh nonces make fresh keys
// per link; the direction in the info makes a frame reflected back to its sender fail.
//
// Who may link: the acceptor answers only a hello whose replica id it was told to
// accept (the configured peers, or any id not retired when joins are open: a joiner
// proves the secret like any peer), and both sides only an actor that is an
// incarnation of the replica id it comes with (`<replica id>/<incarnation>`,
// peerIds.ts). The replica id and actor of an up link are thus a member's, as far
// as the shared secret can tell: rights and rows are bound to them later on.
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import type { Actor } from "../crdt/boundedCounter.js";
import { readId } from "../crdt/codec.js";
import { packr } from "../crdt/msgpack.js";
import { ProtocolError, asProtocolError } from "./messages.js";
import { isActorOf, isReplicaId, replicaIdPattern } from "./peerIds.js";
import type { PeerId } from "./transport.js";

/** 2: links authenticate every frame after the handshake (version 1 did not). */
export const handshakeVersion = 2;
/** Fresh random bytes each side contributes per handshake. */
export const nonceBytes = 32;
/** HMAC-SHA256 output. */
export const proofBytes = 32;
/** Largest handshake frame accepted (a hello with two maximal ids is ~300 bytes). */
export const bytesPerHandshakeFrameMax = 1024;
/** Shortest cluster secret accepted. */
export const secretLengthMin = 16;

/** Bytes of each direction's session key. */
export const sessionKeyBytes = 32;

const proofLabel = "escrow-shop cluster link";
const sessionKeyLabel = "escrow-shop cluster link frame key";

export type HandshakeFrame =
  | { readonly type: "hello"; readonly replicaId: PeerId; readonly actor: Actor; readonly nonce: Uint8Array }
  | {
      readonly type: "challenge";
      readonly replicaId: PeerId;
      readonly actor: Actor;
      readonly nonce: Uint8Array;
      readonly proof: Uint8Array;
    }
  | { readonly type: "proof"; readonly proof: Uint8Array }
  | { readonly type: "welcome" };

/** Who this side is, and the secret it proves knowledge of. */
export interface Credentials {
  readonly replicaId: PeerId;
  readonly actor: Actor;
  readonly secret: string;
}

/** Everything both proofs are bound to. */
export interface Transcript {
  readonly dialerId: PeerId;
  readonly dialerActor: Actor;
  readonly dialerNonce: Uint8Array;
  readonly acceptorId: PeerId;
  readonly acceptorActor: Actor;
  readonly acceptorNonce: Uint8Array;
}

export type Direction = "dialer" | "acceptor";

/** One up link's frame keys, as this side uses them. */
export interface SessionKeys {
  /** Authenticates the frames this side sends. */
  readonly send: Uint8Array;
  /** Checks the frames this side receives. */
  readonly receive: Uint8Array;
}

export type HandshakeState =
  | {
      readonly role: "dialer";
      readonly awaiting: "challenge";
      readonly self: Credentials;
      /** Null when dialing a seed address, whose replica id is not known yet (a join). */
      readonly expectedPeer: PeerId | null;
      readonly nonce: Uint8Array;
    }
  | {
      readonly role: "dialer";
      readonly awaiting: "welcome";
      readonly peer: PeerId;
      readonly actor: Actor;
      readonly keys: SessionKeys;
    }
  | {
      readonly role: "acceptor";
      readonly awaiting: "hello";
      readonly self: Credentials;
      readonly nonce: Uint8Array;
      readonly acceptsPeer: (replicaId: PeerId) => boolean;
    }
  | { readonly role: "acceptor"; readonly awaiting: "proof"; readonly self: Credentials; readonly transcript: Transcript };

/** What to do with one received handshake frame. */
export type HandshakeStep =
  | { readonly kind: "reply"; readonly frame: Uint8Array; readonly next: HandshakeState }
  | {
      readonly kind: "authenticated";
      readonly frame: Uint8Array | null;
      readonly peer: PeerId;
      readonly actor: Actor;
      readonly keys: SessionKeys;
    }
  | { readonly kind: "refused"; readonly reason: string };

const typeCodes = ["hello", "challenge", "proof", "welcome"] as const;
const fieldCounts = { hello: 5, challenge: 6, proof: 3, welcome: 2 } as const;

export function encodeHandshake(frame: HandshakeFrame): Uint8Array {
  const code = typeCodes.indexOf(frame.type);
  switch (frame.type) {
    case "hello":
      return packr.pack([handshakeVersion, code, frame.replicaId, frame.actor, frame.nonce]);
    case "challenge":
      return packr.pack([handshakeVersion, code, frame.replicaId, frame.actor, frame.nonce, frame.proof]);
    case "proof":
      return packr.pack([handshakeVersion, code, frame.proof]);
    case "welcome":
      return packr.pack([handshakeVersion, code]);
  }
}

export function decodeHandshake(bytes: Uint8Array): HandshakeFrame {
  if (bytes.length > bytesPerHandshakeFrameMax) throw new ProtocolError(`handshake frame over ${bytesPerHandshakeFrameMax} bytes`);
  let fields: unknown;
  try {
    fields = packr.unpack(bytes);
  } catch (error) {
    throw new ProtocolError(`handshake frame is not msgpack: ${(error as Error).message}`);
  }
  if (!Array.isArray(fields) || fields.length < 2) throw new ProtocolError("handshake frame must be an array");
  if (fields[0] !== handshakeVersion) throw new ProtocolError("unknown handshake version");
  const type = typeof fields[1] === "number" ? typeCodes[fields[1]] : undefined;
  if (type === undefined || fields.length !== fieldCounts[type]) {
    throw new ProtocolError("unknown handshake frame type or wrong field count");
  }
  return asProtocolError(() => readFrame(type, fields));
}

function readFrame(type: HandshakeFrame["type"], fields: unknown[]): HandshakeFrame {
  switch (type) {
    case "hello":
      return { type, replicaId: readId(fields[2], "an id"), actor: readId(fields[3], "an id"), nonce: readBytes(fields[4], nonceBytes) };
    case "challenge":
      return {
        type,
        replicaId: readId(fields[2], "an id"),
        actor: readId(fields[3], "an id"),
        nonce: readBytes(fields[4], nonceBytes),
        proof: readBytes(fields[5], proofBytes),
      };
    case "proof":
      return { type, proof: readBytes(fields[2], proofBytes) };
    case "welcome":
      return { type };
  }
}

function readBytes(value: unknown, length: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) throw new ProtocolError(`expected ${length} bytes`);
  return value;
}

export function proofOf(secret: string, direction: Direction, transcript: Transcript): Uint8Array {
  const input = packr.pack([
    proofLabel,
    handshakeVersion,
    direction,
    transcript.dialerId,
    transcript.dialerActor,
    transcript.dialerNonce,
    transcript.acceptorId,
    transcript.acceptorActor,
    transcript.acceptorNonce,
  ]);
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(input).digest();
}

/** Constant-time check of a received proof. */
export function proofIsValid(secret: string, direction: Direction, transcript: Transcript, proof: Uint8Array): boolean {
  const expected = proofOf(secret, direction, transcript);
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}

/**
 * The key that authenticates the frames `sender` sends on the link of `transcript`.
 * Both sides derive both keys; only the two ends of this handshake can.
 */
export function sessionKeyOf(secret: string, sender: Direction, transcript: Transcript): Uint8Array {
  const salt = Buffer.concat([transcript.dialerNonce, transcript.acceptorNonce]);
  const info = packr.pack([
    sessionKeyLabel,
    handshakeVersion,
    sender,
    transcript.dialerId,
    transcript.dialerActor,
    transcript.acceptorId,
    transcript.acceptorActor,
  ]);
  return new Uint8Array(hkdfSync("sha256", Buffer.from(secret, "utf8"), salt, info, sessionKeyBytes));
}

function sessionKeysOf(secret: string, self: Direction, transcript: Transcript): SessionKeys {
  const other: Direction = self === "dialer" ? "acceptor" : "dialer";
  return { send: sessionKeyOf(secret, self, transcript), receive: sessionKeyOf(secret, other, transcript) };
}

/**
 * The dialer's first frame and state; `nonce` must be fresh random bytes. `expectedPeer`
 * null: a seed address, where any replica but this one may answer.
 */
export function startDialer(self: Credentials, expectedPeer: PeerId | null, nonce: Uint8Array): { readonly hello: Uint8Array; readonly state: HandshakeState } {
  assertNonce(nonce);
  const hello = encodeHandshake({ type: "hello", replicaId: self.replicaId, actor: self.actor, nonce });
  return { hello, state: { role: "dialer", awaiting: "challenge", self, expectedPeer, nonce } };
}

/**
 * The acceptor's state before the dialer's hello; `nonce` must be fresh random bytes.
 * `acceptsPeer` says which replica ids may link.
 */
export function startAcceptor(self: Credentials, nonce: Uint8Array, acceptsPeer: (replicaId: PeerId) => boolean): HandshakeState {
  assertNonce(nonce);
  return { role: "acceptor", awaiting: "hello", self, nonce, acceptsPeer };
}

function assertNonce(nonce: Uint8Array): void {
  if (nonce.length !== nonceBytes) throw new RangeError(`a nonce must be ${nonceBytes} bytes`);
}

/** Advances the handshake by one received frame. Never throws on remote input. */
export function handshakeStep(state: HandshakeState, bytes: Uint8Array): HandshakeStep {
  let frame: HandshakeFrame;
  try {
    frame = decodeHandshake(bytes);
  } catch (error) {
    if (error instanceof ProtocolError) return refused(error.message);
    throw error;
  }
  if (frame.type !== state.awaiting) return refused(`expected a ${state.awaiting} frame, got ${frame.type}`);
  switch (state.awaiting) {
    case "hello":
      return frame.type === "hello" ? acceptorOnHello(state, frame) : refused("unreachable");
    case "challenge":
      return frame.type === "challenge" ? dialerOnChallenge(state, frame) : refused("unreachable");
    case "proof":
      return frame.type === "proof" ? acceptorOnProof(state, frame) : refused("unreachable");
    case "welcome":
      return { kind: "authenticated", frame: null, peer: state.peer, actor: state.actor, keys: state.keys };
  }
}

/** Why a claimed replica id and actor cannot be a replica's, or null. */
function identityProblem(replicaId: PeerId, actor: Actor): string | null {
  if (!isReplicaId(replicaId)) return `an id must match ${replicaIdPattern}, got ${JSON.stringify(replicaId)}`;
  if (!isActorOf(actor, replicaId)) return `an actor must be ${replicaId}/<incarnation>, got ${JSON.stringify(actor)}`;
  return null;
}

function refused(reason: string): HandshakeStep {
  return { kind: "refused", reason };
}

function acceptorOnHello(state: Extract<HandshakeState, { awaiting: "hello" }>, hello: Extract<HandshakeFrame, { type: "hello" }>): HandshakeStep {
  if (hello.replicaId === state.self.replicaId) return refused(`dialer claims our own replica id ${hello.replicaId}`);
  const problem = identityProblem(hello.replicaId, hello.actor);
  if (problem !== null) return refused(problem);
  if (!state.acceptsPeer(hello.replicaId)) return refused(`replica ${hello.replicaId} may not link (not a peer, or retired)`);
  if (Buffer.from(hello.nonce).equals(state.nonce)) return refused("dialer reflected our nonce");
  const transcript: Transcript = {
    dialerId: hello.replicaId,
    dialerActor: hello.actor,
    dialerNonce: hello.nonce,
    acceptorId: state.self.replicaId,
    acceptorActor: state.self.actor,
    acceptorNonce: state.nonce,
  };
  const frame = encodeHandshake({
    type: "challenge",
    replicaId: state.self.replicaId,
    actor: state.self.actor,
    nonce: state.nonce,
    proof: proofOf(state.self.secret, "acceptor", transcript),
  });
  return { kind: "reply", frame, next: { role: "acceptor", awaiting: "proof", self: state.self, transcript } };
}

function dialerOnChallenge(
  state: Extract<HandshakeState, { awaiting: "challenge" }>,
  challenge: Extract<HandshakeFrame, { type: "challenge" }>,
): HandshakeStep {
  if (state.expectedPeer !== null && challenge.replicaId !== state.expectedPeer) {
    return refused(`dialed replica ${state.expectedPeer} but ${challenge.replicaId} answered`);
  }
  if (challenge.replicaId === state.self.replicaId) return refused(`the seed answered with our own replica id ${challenge.replicaId}`);
  const problem = identityProblem(challenge.replicaId, challenge.actor);
  if (problem !== null) return refused(problem);
  if (Buffer.from(challenge.nonce).equals(state.nonce)) return refused("acceptor reflected our nonce");
  const transcript: Transcript = {
    dialerId: state.self.replicaId,
    dialerActor: state.self.actor,
    dialerNonce: state.nonce,
    acceptorId: challenge.replicaId,
    acceptorActor: challenge.actor,
    acceptorNonce: challenge.nonce,
  };
  if (!proofIsValid(state.self.secret, "acceptor", transcript, challenge.proof)) {
    return refused(`replica ${challenge.replicaId} failed the proof (different cluster secret?)`);
  }
  const frame = encodeHandshake({ type: "proof", proof: proofOf(state.self.secret, "dialer", transcript) });
  const keys = sessionKeysOf(state.self.secret, "dialer", transcript);
  return { kind: "reply", frame, next: { role: "dialer", awaiting: "welcome", peer: challenge.replicaId, actor: challenge.actor, keys } };
}

function acceptorOnProof(state: Extract<HandshakeState, { awaiting: "proof" }>, proof: Extract<HandshakeFrame, { type: "proof" }>): HandshakeStep {
  const { transcript } = state;
  if (!proofIsValid(state.self.secret, "dialer", transcript, proof.proof)) {
    return refused(`replica ${transcript.dialerId} failed the proof (different cluster secret?)`);
  }
  const frame = encodeHandshake({ type: "welcome" });
  const keys = sessionKeysOf(state.self.secret, "acceptor", transcript);
  return { kind: "authenticated", frame, peer: transcript.dialerId, actor: transcript.dialerActor, keys };
}
