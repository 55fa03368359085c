// The faults of a chaos run (runChaos.ts), each from its start to its heal: which
// replicas it cuts, kills, wipes, freezes or adds, and which must keep serving.
import { setTimeout as sleep } from "node:timers/promises";
import { runPool, send } from "../net/httpClient.js";
import { type ChaosCluster, type ChaosReplica, clusterView } from "./chaosCluster.js";
import type { ChaosLoad, ShopShape } from "./chaosLoad.js";
import { type FaultName, replicaIds } from "./chaosOptions.js";

export interface FaultPlan {
  readonly description: string;
  /** Sides of the fault for the served counts, as replica indexes. */
  readonly sides: readonly (readonly number[])[];
  /** Replicas that must answer reads, increments and decrements during the fault (G5). */
  readonly mustServe: readonly number[];
  /** Replicas that stay up (not cut off, frozen, killed or wiped): their reduced service is measured. */
  readonly survivors: readonly number[];
  /** Runs the fault from its start to its heal; notes go to the report. */
  run(context: FaultContext): Promise<void>;
  /** After the fault's checks, with the load stopped: undoes what must not outlast the fault (a joined replica leaves). */
  settle?(context: FaultContext): Promise<void>;
}

export interface FaultContext {
  readonly cluster: ChaosCluster;
  readonly load: ChaosLoad;
  readonly shape: ShopShape;
  readonly faultMs: number;
  note(text: string): void;
  /** The fault's own figure for the table (e.g. a joiner's time to serve). */
  figure(text: string): void;
  /** A check of the fault's own that failed: counted with the inconsistencies. */
  problem(text: string): void;
  /** A replica's view of a cut link: when (ms after the cut) it first showed the link down. */
  detected(detection: Detection): void;
}

export interface Detection {
  readonly replicaId: string;
  readonly peerId: string;
  /** When it first showed the link lagging or down (its replies stop waiting for the peer); null if never. */
  readonly laggingAfterMs: number | null;
  /** Null if the replica still showed the link up when the fault ended. */
  readonly downAfterMs: number | null;
}

/**
 * Polls each replica's GET /cluster until it shows its link to `peerId` down, for
 * at most `waitMs`; notes when it first showed the link lagging too.
 */
async function watchCutLinks(context: FaultContext, pairs: readonly (readonly [string, string])[], waitMs: number): Promise<void> {
  const started = performance.now();
  const pending = new Map(pairs.map(([replicaId, peerId]) => [`${replicaId}>${peerId}`, { replicaId, peerId, laggingAfterMs: null as number | null }]));
  while (pending.size > 0 && performance.now() - started < waitMs) {
    for (const [key, watched] of [...pending]) {
      const view = await clusterView(context.cluster.replica(watched.replicaId).url);
      const link = view?.peers.find((peer) => peer.replicaId === watched.peerId);
      if (link === undefined) continue;
      const sinceMs = performance.now() - started;
      if (watched.laggingAfterMs === null && (link.lagging || !link.up)) watched.laggingAfterMs = sinceMs;
      if (!link.up) {
        pending.delete(key);
        context.detected({ ...watched, downAfterMs: sinceMs });
      }
    }
    await sleep(100);
  }
  for (const watched of pending.values()) context.detected({ ...watched, downAfterMs: null });
}

/**
 * Before a cut: each pair must have a connection open through the proxy (the mesh is
 * up, so its link is one). A pair linked around the proxy (at addresses other than
 * its --peers) would make the cut cut nothing, and the fault pass for nothing.
 */
function checkLinkedThroughProxy({ cluster, problem }: FaultContext, pairs: readonly (readonly [string, string])[]): void {
  const links = cluster.proxy.stats();
  for (const [a, b] of pairs) {
    const open = links.filter((link) => (link.from === a && link.to === b) || (link.from === b && link.to === a));
    if (open.every((link) => link.connectionsOpen === 0)) {
      problem(`${a} and ${b} had no connection through the proxy when the fault began: they link around it, so the cut cuts nothing`);
    }
  }
}

export const faultPlans: Readonly<Record<FaultName, FaultPlan>> = {
  isolate: {
    description: "r1 cut off from r2, r3 (black hole)",
    sides: [[0], [1, 2]],
    mustServe: [0, 1, 2],
    survivors: [1, 2],
    async run(context) {
      checkLinkedThroughProxy(context, [
        ["r1", "r2"],
        ["r1", "r3"],
      ]);
      context.cluster.proxy.isolate("r1");
      const pairs = [
        ["r1", "r2"],
        ["r1", "r3"],
        ["r2", "r1"],
        ["r3", "r1"],
      ] as const;
      await Promise.all([sleep(context.faultMs), watchCutLinks(context, pairs, context.faultMs - 100)]);
      context.cluster.proxy.healAll();
    },
  },
  bridge: {
    description: "r1–r3 reset+cut, r2 bridges",
    sides: [[0], [1], [2]],
    mustServe: [0, 1, 2],
    survivors: [0, 1, 2],
    async run(context) {
      checkLinkedThroughProxy(context, [["r1", "r3"]]);
      context.cluster.proxy.resetBetween("r1", "r3");
      context.cluster.proxy.cutBetween("r1", "r3");
      const pairs = [
        ["r1", "r3"],
        ["r3", "r1"],
      ] as const;
      await Promise.all([sleep(context.faultMs), watchCutLinks(context, pairs, context.faultMs - 100)]);
      context.cluster.proxy.healAll();
    },
  },
  kill: {
    description: "kill -9 r2 mid-checkout, restart on its folder",
    sides: [[1], [0, 2]],
    mustServe: [0, 2],
    survivors: [0, 2],
    async run(context) {
      const started = performance.now();
      await killMidCheckout(context, 1);
      await sleep(context.faultMs / 2 - (performance.now() - started));
      const replica = await context.cluster.restart("r2", "same");
      context.note(
        `r2 restarted on its folder after ${Math.round(performance.now() - started)} ms, incarnation ${replica.incarnation} (same: ${replica.incarnations.length === 2 && replica.incarnations[0] === replica.incarnation})`,
      );
      await Promise.all([probeAfterRestart(context, "r2"), sleep(context.faultMs - (performance.now() - started))]);
    },
  },
  wipe: {
    description: "kill -9 r3, restart on an empty folder",
    sides: [[2], [0, 1]],
    mustServe: [0, 1],
    survivors: [0, 1],
    async run(context) {
      const started = performance.now();
      await killMidCheckout(context, 2);
      const replica = await context.cluster.restart("r3", "empty");
      const previous = replica.incarnations.at(-2);
      context.note(`r3 restarted on an empty folder after ${Math.round(performance.now() - started)} ms: incarnation ${previous} -> ${replica.incarnation}`);
      await Promise.all([probeAfterRestart(context, "r3"), sleep(context.faultMs - (performance.now() - started))]);
    },
  },
  pause: {
    description: "r3 frozen (SIGSTOP), thawed at 3/4",
    sides: [[2], [0, 1]],
    mustServe: [0, 1],
    survivors: [0, 1],
    async run(context) {
      const started = performance.now();
      const pausedMs = Math.round((context.faultMs * 3) / 4);
      const inFlight = context.load.inFlightAt(2);
      context.cluster.pause("r3");
      try {
        await sleep(stopSeenWaitMs);
        context.note(`r3 frozen (SIGSTOP) with ${inFlight} request(s) in flight; process state ${context.cluster.processState("r3") ?? "unknown"}`);
        const pairs = [
          ["r1", "r3"],
          ["r2", "r3"],
        ] as const;
        await Promise.all([sleep(pausedMs - stopSeenWaitMs), watchCutLinks(context, pairs, pausedMs - stopSeenWaitMs - 100)]);
      } finally {
        context.cluster.resume("r3");
      }
      const stuck = context.load.inFlightAt(2);
      context.note(
        `r3 thawed (SIGCONT) after ${Math.round(performance.now() - started)} ms with ${stuck} load request(s) waiting on it; process state ${context.cluster.processState("r3") ?? "unknown"}`,
      );
      await sleep(context.faultMs - (performance.now() - started));
    },
  },
  // The joiner's links bypass the proxy (its routes are fixed): it leaves after the checks, before the next fault.
  join: {
    description: "r4 joins through r1's peer port, leaves after the checks",
    sides: [[0, 1, 2], [3]],
    mustServe: [0, 1, 2, 3],
    survivors: [0, 1, 2],
    async run(context) {
      const started = performance.now();
      const joiner = await context.cluster.join("r1");
      const servingMs = performance.now() - started;
      // Load index 3, the plan's last side: the founders are 0..2, and a joiner leaves at settle.
      context.load.addReplica();
      context.figure(`${joiner.replicaId} serving after ${(servingMs / 1000).toFixed(2)} s`);
      context.note(
        `${joiner.replicaId} started on an empty folder with --join at r1's peer port: serving (caught up, /ready 200) after ${Math.round(servingMs)} ms, incarnation ${joiner.incarnation}; then loaded like the others`,
      );
      const listWaitMs = Math.max(listedWaitMsMin, context.faultMs - (performance.now() - started));
      const [complete, listed] = await Promise.all([
        probeAfterRestart(context, joiner.replicaId),
        waitUntilListed(context.cluster.replicas, joiner.replicaId, "active", listWaitMs).then((unlisted) => ({ unlisted, atMs: performance.now() - started })),
      ]);
      if (!complete) context.problem(`${joiner.replicaId} served before it could read every existing key (G6): see the probe's note`);
      if (listed.unlisted.length > 0)
        context.problem(`by the end of the fault, not every replica listed ${joiner.replicaId} active: ${listed.unlisted.join("; ")}`);
      else context.note(`every replica listed ${joiner.replicaId} active ${Math.round(listed.atMs)} ms after its start`);
      await sleep(context.faultMs - (performance.now() - started));
      context.note(joinLogNote(joiner));
    },
    async settle(context) {
      for (const joiner of context.cluster.replicas.slice(replicaIds.length)) await leave(context, joiner);
    },
  },
};

/** What the joiner itself logged of its join: its time from dialing to active, and its warnings (a catch-up cut short). */
function joinLogNote(joiner: ChaosReplica): string {
  const joinedMs = /joined the cluster in (\d+) ms/.exec(joiner.output)?.[1];
  const warnings = joiner.output.split("\n").filter((line) => line.includes('"level":40'));
  const shown = warnings.slice(0, 3).map((line) => (/"msg":"([^"]*)"/.exec(line)?.[1] ?? line).slice(0, 200));
  return `${joiner.replicaId}'s log: joined the cluster in ${joinedMs ?? "?"} ms (from its first dial to active); ${warnings.length} warning(s)${shown.length > 0 ? `: ${shown.join("; ")}` : ""}`;
}

/** Even a join slower than the fault gets this long for every replica to list it active. */
const listedWaitMsMin = 2_000;
/** Bound on a leave (POST /cluster/leave waits up to 10 s per step) and on its news reaching every replica. */
const leaveWaitMsMax = 30_000;

/**
 * The replica that joined leaves through the admin route (asked again while it is
 * draining), every other replica must list it retired, then the harness stops it
 * and takes it out of the members.
 */
async function leave({ cluster, note, problem }: FaultContext, joiner: ChaosReplica): Promise<void> {
  const started = performance.now();
  let answer = "";
  let retired = false;
  while (!retired && performance.now() - started < leaveWaitMsMax) {
    try {
      const response = await fetch(`${joiner.url}/cluster/leave`, {
        method: "POST",
        headers: { authorization: `Bearer ${cluster.adminToken}` },
        signal: AbortSignal.timeout(leaveWaitMsMax),
      });
      answer = `${response.status} ${await response.text()}`;
      const report = response.ok ? (JSON.parse(answer.slice(4)) as { state: string; waitingFor: string[] }) : null;
      retired = report?.state === "retired" && report.waitingFor.length === 0;
    } catch (error) {
      answer = error instanceof Error ? error.message : String(error);
    }
    if (!retired) await sleep(500);
  }
  const others = cluster.replicas.filter((replica) => replica !== joiner);
  const unlisted = retired ? await waitUntilListed(others, joiner.replicaId, "retired", leaveWaitMsMax) : [];
  if (!retired) problem(`${joiner.replicaId} did not leave within ${leaveWaitMsMax} ms: ${answer}`);
  else if (unlisted.length > 0) problem(`${joiner.replicaId} retired, but not every replica listed it so: ${unlisted.join("; ")}`);
  else note(`${joiner.replicaId} left (POST /cluster/leave: ${answer}); every replica listed it retired after ${Math.round(performance.now() - started)} ms`);
  await cluster.remove(joiner.replicaId);
}

/**
 * Polls GET /cluster of each replica until its members list `replicaId` in `state`,
 * for at most `waitMs`; returns what those that never did showed last (empty: all did).
 */
async function waitUntilListed(replicas: readonly ChaosReplica[], replicaId: string, state: string, waitMs: number): Promise<string[]> {
  const deadline = performance.now() + waitMs;
  const pending = new Map(replicas.map((replica) => [replica, "no answer"]));
  for (;;) {
    for (const replica of [...pending.keys()]) {
      const shown = (await clusterView(replica.url))?.members.find((member) => member.replicaId === replicaId)?.state ?? "not listed";
      if (shown === state) pending.delete(replica);
      else pending.set(replica, shown);
    }
    if (pending.size === 0 || performance.now() > deadline) return [...pending].map(([replica, shown]) => `${replica.replicaId} shows ${shown}`);
    await sleep(50);
  }
}

/** After SIGSTOP, before reading the process state (the signal is delivered asynchronously). */
const stopSeenWaitMs = 50;

/**
 * Reads every item and user at a replica the moment it serves again after a
 * restart, or first serves after a join. They all exist (batch_init'ed before the
 * fault, acknowledged by every replica), so a 404 is a stale read while the peers
 * were reachable (G6). Noted; returns whether every read was a 200.
 */
async function probeAfterRestart({ cluster, shape, note }: FaultContext, replicaId: string): Promise<boolean> {
  const url = cluster.replica(replicaId).url;
  const paths = [
    ...Array.from({ length: shape.items }, (_, index) => `/stock/find/${index}`),
    ...Array.from({ length: shape.users }, (_, index) => `/payment/find_user/${index}`),
  ];
  const started = performance.now();
  const statuses = new Map<string, number>();
  await runPool(paths.length, 8, async (index) => {
    const outcome = await send(url, "GET", paths[index]!, 5_000);
    const status = outcome.kind === "answer" ? String(outcome.status) : outcome.kind;
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
  });
  const summary = [...statuses].map(([status, count]) => `${count}× ${status}`).join(", ");
  note(
    `G6 probe: ${replicaId}'s reads of the ${paths.length} existing items and users right after it served (${Math.round(performance.now() - started)} ms): ${summary}`,
  );
  return statuses.size === 1 && statuses.has("200");
}

/** Waits (up to 2 s) until the replica has a checkout in flight, then SIGKILLs it in the same tick. */
async function killMidCheckout({ cluster, load, note }: FaultContext, replicaIndex: number): Promise<void> {
  const replicaId = replicaIds[replicaIndex]!;
  const deadline = performance.now() + 2_000;
  while (load.inFlight(replicaIndex, "checkout") === 0 && performance.now() < deadline) await sleep(1);
  const checkouts = load.inFlight(replicaIndex, "checkout");
  const others = load.inFlightAt(replicaIndex) - checkouts;
  cluster.killNow(replicaId);
  await cluster.replica(replicaId).exited;
  note(`${replicaId} killed (SIGKILL) with ${checkouts} checkout(s) and ${others} other request(s) in flight`);
}
