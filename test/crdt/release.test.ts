// Releasing a dead actor's rights (ShopState.releaseAll): its heir writes transfers
// into the dead actor's row, every unit lands at the targets and the value stays the
// same (G2); a peer merges the heir's state; and once the release is known, a later
// change of the dead actor's own (a zombie, or a stale relay) is refused.
import { describe, expect, it } from "vitest";
import { ForgedStateError, ShopState, isRefusal } from "../../crdt/shopState.js";

const [dead, heir, other] = ["r3/old", "r1/a", "r2/b"];

function credit(shop: ShopState, id: string): number {
  const user = shop.findUser(id);
  if (isRefusal(user)) throw new Error(user.message);
  return user.credit;
}

describe("releasing a dead actor's rights", () => {
  it("moves them all to the targets, keeps the value, and refuses the dead actor's later changes", () => {
    const origin = new ShopState(dead, () => {});
    origin.createUser("U");
    expect(origin.addFunds("U", 40)).toBeNull();
    expect(origin.pay("U", 4)).toBeNull();
    const lastSeen = origin.encode("u:U");
    expect(origin.pay("U", 6)).toBeNull();
    const neverSent = origin.encode("u:U");

    const releasing = new Set<string>();
    const atHeir = new ShopState(heir, () => {});
    atHeir.peerStatePolicy = { actorAdmitted: () => true, generationCounterMax: () => 2 ** 50, released: (actor) => releasing.has(actor) };
    atHeir.mergeEncoded("u:U", lastSeen);
    expect([...atHeir.keysWithRightsOf(dead)]).toEqual(["u:U"]);
    releasing.add(dead);
    expect(atHeir.releaseAll(dead, "u:U", [heir, other], 0)).toBe(true);
    expect([...atHeir.keysWithRightsOf(dead)]).toEqual([]);
    const counter = atHeir.counterAt("u:U")!;
    expect(counter.rights(heir) + counter.rights(other)).toBe(36);
    expect(credit(atHeir, "U")).toBe(36);
    expect(atHeir.pay("U", counter.rights(heir))).toBeNull();

    // A peer that saw the same takes the heir's state; the dead actor's own later change is refused.
    const atOther = new ShopState(other, () => {});
    atOther.mergeEncoded("u:U", lastSeen);
    expect(atOther.mergeEncoded("u:U", atHeir.encode("u:U"))).toBe(true);
    expect(atOther.counterAt("u:U")!.rights(other)).toBe(counter.rights(other));
    expect(() => atHeir.mergeEncoded("u:U", neverSent)).toThrow(ForgedStateError);
    expect(() => atHeir.mergeEncoded("u:U", neverSent)).toThrow(/later changes of r3\/old, whose rights were released/);
    expect(atHeir.releaseAll(heir, "u:U", [other], 0)).toBe(false);
  });
});
