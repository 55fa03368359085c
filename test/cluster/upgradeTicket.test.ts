// The upgrade ticket (upgradeTicket.ts): good only with the secret, for the replica it
// names, near the acceptor's clock, and once; the check never throws on any header.
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  UpgradeTicketChecker,
  seedTicketTarget,
  upgradeClockSkewMsMax,
  upgradeNonceBytes,
  upgradeTicket,
  upgradeTicketsRememberedMax,
} from "../../cluster/upgradeTicket.js";

const secret = "correct horse battery staple";
const nowMs = 1_800_000_000_000;
const ticket = (options: { secret?: string; acceptor?: string; atMs?: number } = {}): string =>
  upgradeTicket(options.secret ?? secret, options.acceptor ?? "b", options.atMs ?? nowMs, randomBytes(upgradeNonceBytes));

describe("upgrade tickets", () => {
  it("a fresh ticket for this replica made with the secret passes once", () => {
    const checker = new UpgradeTicketChecker(secret, "b");
    const good = ticket();
    expect(checker.check(good, nowMs)).toBeNull();
    expect(checker.check(good, nowMs + 5)).toBe("replayed upgrade ticket");
    expect(checker.check(ticket({ atMs: nowMs - upgradeClockSkewMsMax + 1 }), nowMs)).toBeNull();
    expect(checker.check(ticket({ atMs: nowMs + upgradeClockSkewMsMax - 1 }), nowMs)).toBeNull();
  });

  it("refuses none, another secret, another replica, a stale or future timestamp, and a changed field", () => {
    const checker = new UpgradeTicketChecker(secret, "b");
    expect(checker.check(undefined, nowMs)).toBe("no upgrade ticket");
    expect(checker.check([ticket(), ticket()], nowMs)).toBe("malformed upgrade ticket");
    expect(checker.check(ticket({ secret: "another secret of 16+" }), nowMs)).toBe("upgrade ticket with a wrong mac");
    expect(checker.check(ticket({ acceptor: "c" }), nowMs)).toBe("upgrade ticket with a wrong mac");
    expect(checker.check(ticket({ atMs: nowMs - upgradeClockSkewMsMax - 1_000 }), nowMs)).toMatch(/^stale upgrade ticket \(-31 s from our clock/);
    expect(checker.check(ticket({ atMs: nowMs + 45_000 }), nowMs)).toMatch(/^stale upgrade ticket \(45 s from our clock/);
    const [version, timestamp, nonce, mac] = ticket().split(".") as [string, string, string, string];
    expect(checker.check([version, String(Number(timestamp) + 1), nonce, mac].join("."), nowMs)).toBe("upgrade ticket with a wrong mac");
    expect(checker.check([version, timestamp, randomBytes(16).toString("base64url"), mac].join("."), nowMs)).toBe("upgrade ticket with a wrong mac");
  });

  it("a ticket to a seed address (a join, the id not known yet) passes at any replica, once, and only with the secret", () => {
    const seedTicket = ticket({ acceptor: seedTicketTarget });
    expect(new UpgradeTicketChecker(secret, "b").check(seedTicket, nowMs)).toBeNull();
    expect(new UpgradeTicketChecker(secret, "c").check(ticket({ acceptor: seedTicketTarget }), nowMs)).toBeNull();
    const checker = new UpgradeTicketChecker(secret, "b");
    expect(checker.check(seedTicket, nowMs)).toBeNull();
    expect(checker.check(seedTicket, nowMs)).toBe("replayed upgrade ticket");
    expect(checker.check(ticket({ acceptor: seedTicketTarget, secret: "another secret of 16+" }), nowMs)).toBe("upgrade ticket with a wrong mac");
  });

  it("never throws on any header", () => {
    const checker = new UpgradeTicketChecker(secret, "b");
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.constant(`v1.${"9".repeat(15)}.${"A".repeat(22)}.${"B".repeat(43)}`)), (header) => {
        expect(typeof checker.check(header, nowMs)).toBe("string");
      }),
    );
  });

  it("remembers a bounded number of fresh tickets, forgetting stale ones first", () => {
    const checker = new UpgradeTicketChecker(secret, "b");
    for (let index = 0; index < upgradeTicketsRememberedMax; index++) expect(checker.check(ticket(), nowMs)).toBeNull();
    expect(checker.check(ticket(), nowMs)).toBe("too many fresh upgrade tickets");
    // Once those are stale they make room again.
    const laterMs = nowMs + upgradeClockSkewMsMax + 1;
    expect(checker.check(ticket({ atMs: laterMs }), laterMs)).toBeNull();
  });
});
