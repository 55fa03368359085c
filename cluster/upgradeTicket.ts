// A ticket in the WebSocket upgrade request of a peer link, checked before the ws
// handshake: whoever lacks the cluster secret is refused while still plain HTTP, before
// any WebSocket state, frame buffer or handshake work is spent on them.
//
//   header x-cluster-link: v1.<timestamp ms>.<nonce, base64url>.<mac, base64url>
//   mac = HMAC-SHA256(secret, pack([label, 1, acceptor's replica id, timestamp, nonce]))
//
// A ticket is good only at the replica it names, within upgradeClockSkewMsMax of the
// acceptor's clock, and once (its nonce is remembered until it is stale). A replica
// that joins dials a seed address whose id it does not know yet: its ticket names
// `seedTicketTarget` instead, which every replica takes. It proves
// nothing about who dials: the handshake after it does that. Pure: the clock and the
// nonce are passed in.
import { createHmac, timingSafeEqual } from "node:crypto";
import { packr } from "../crdt/msgpack.js";
import type { PeerId } from "./transport.js";

/** The request header that carries the ticket (lower case, as Node gives headers). */
export const upgradeTicketHeader = "x-cluster-link";
/** How far a ticket's timestamp may be from the acceptor's clock: the replicas' clocks must agree this well. */
export const upgradeClockSkewMsMax = 30_000;
/** Fresh tickets remembered against replay; past this, new ones are refused until old ones are stale. */
export const upgradeTicketsRememberedMax = 4096;
export const upgradeNonceBytes = 16;

/** What a ticket to a seed address names: not a replica id, so it never collides with one. */
export const seedTicketTarget = "*";

const ticketLabel = "escrow-shop cluster link upgrade";
const ticketVersion = 1;
const ticketLengthMax = 160;
const ticketPattern = /^v1\.([0-9]{1,15})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/;

function macOf(secret: string, acceptorId: PeerId, timestampMs: number, nonce: Uint8Array): Buffer {
  const input = packr.pack([ticketLabel, ticketVersion, acceptorId, timestampMs, nonce]);
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(input).digest();
}

/** The ticket a dialer sends to `acceptorId` (or seedTicketTarget) at `nowMs`; `nonce` must be fresh random bytes. */
export function upgradeTicket(secret: string, acceptorId: PeerId | typeof seedTicketTarget, nowMs: number, nonce: Uint8Array): string {
  if (nonce.length !== upgradeNonceBytes) throw new RangeError(`an upgrade nonce must be ${upgradeNonceBytes} bytes`);
  const timestampMs = Math.floor(nowMs);
  const mac = macOf(secret, acceptorId, timestampMs, nonce);
  return `v1.${timestampMs}.${Buffer.from(nonce).toString("base64url")}.${mac.toString("base64url")}`;
}

/** Checks the tickets arriving at one replica, and remembers the good ones until they are stale. */
export class UpgradeTicketChecker {
  /** Nonce (base64url) of each accepted ticket, with its timestamp. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly secret: string,
    private readonly selfId: PeerId,
  ) {}

  /** Null if `header` is a good ticket for us at `nowMs` (it is then used up), else why not. */
  check(header: string | string[] | undefined, nowMs: number): string | null {
    if (header === undefined) return "no upgrade ticket";
    if (typeof header !== "string" || header.length > ticketLengthMax) return "malformed upgrade ticket";
    const match = ticketPattern.exec(header);
    if (match === null) return "malformed upgrade ticket";
    const [, timestampText, nonceText, macText] = match as unknown as [string, string, string, string];
    const timestampMs = Number(timestampText);
    const nonce = Buffer.from(nonceText, "base64url");
    const mac = Buffer.from(macText, "base64url");
    if (!this.macMatches(mac, timestampMs, nonce, this.selfId) && !this.macMatches(mac, timestampMs, nonce, seedTicketTarget)) {
      return "upgrade ticket with a wrong mac";
    }
    const skewMs = timestampMs - nowMs;
    if (Math.abs(skewMs) > upgradeClockSkewMsMax) {
      return `stale upgrade ticket (${Math.round(skewMs / 1000)} s from our clock: check the replicas' clocks)`;
    }
    if (this.seen.has(nonceText)) return "replayed upgrade ticket";
    if (this.seen.size >= upgradeTicketsRememberedMax) this.forgetStale(nowMs);
    if (this.seen.size >= upgradeTicketsRememberedMax) return "too many fresh upgrade tickets";
    this.seen.set(nonceText, timestampMs);
    return null;
  }

  private macMatches(mac: Buffer, timestampMs: number, nonce: Uint8Array, target: string): boolean {
    const expected = macOf(this.secret, target, timestampMs, nonce);
    return mac.length === expected.length && timingSafeEqual(mac, expected);
  }

  /** Drops the tickets that are refused as stale anyway. */
  private forgetStale(nowMs: number): void {
    for (const [nonce, timestampMs] of this.seen) {
      if (Math.abs(timestampMs - nowMs) > upgradeClockSkewMsMax) this.seen.delete(nonce);
    }
  }
}
