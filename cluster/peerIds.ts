// What a replica id and an actor look like, checked wherever a peer names itself
// (the link handshake) and wherever rights or rows are bound to a replica. An actor
// is `<replica id>/<incarnation>` (node/identity.ts): it names its replica, so
// rights and rows can be tied to the members of the cluster.
import type { Actor } from "../crdt/boundedCounter.js";
import { idLengthMax } from "../crdt/codec.js";
import type { PeerId } from "./transport.js";

/** The same pattern as node/config.ts and the membership document. */
export const replicaIdPattern = /^[A-Za-z0-9_-]{1,32}$/;
/** An incarnation: printable ASCII without spaces (the membership document's actor characters). */
const incarnationPattern = /^[\x21-\x7e]+$/;

export function isReplicaId(value: string): boolean {
  return replicaIdPattern.test(value);
}

/** The replica id an actor names, or undefined if it is not `<replica id>/<incarnation>`. */
export function replicaIdOfActor(actor: Actor): PeerId | undefined {
  const slash = actor.indexOf("/");
  if (slash < 1 || actor.length > idLengthMax) return undefined;
  const replicaId = actor.slice(0, slash);
  const incarnation = actor.slice(slash + 1);
  return isReplicaId(replicaId) && incarnationPattern.test(incarnation) ? replicaId : undefined;
}

/** True if `actor` is an incarnation of replica `replicaId`. */
export function isActorOf(actor: Actor, replicaId: PeerId): boolean {
  return replicaIdOfActor(actor) === replicaId;
}
