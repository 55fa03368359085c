// G1-G6 over many seeded schedules of small runs: 3-5 real replicas, 2-3 clients,
// up to 4 faults of every kind (partitions, link drops, delays, crashes, lost
// disks). A failing seed prints its replay command: node dist/scripts/simulate.js --seed N --size small
import { describe } from "vitest";
import { sweep } from "./seedSweep.js";

describe("simulated clusters, small runs", () => {
  sweep("small", 1, 1300, { size: "small" });
  sweep("small", 300_001, 3400, { size: "small" });
  // Gossip in every run and a replica that leaves in nearly every one (drain, G1-G3
  // and nothing stranded), among the other faults.
  sweep("small, a replica leaves", 600_001, 300, { size: "small", gossip: true, faultWeights: { leave: 20 } });
  // New replicas join in nearly every run, with a second join, a leave, a partition or
  // their own crash at about the same time now and then (the other half: seedsLarge).
  sweep("small, replicas join", 700_001, 150, { size: "small", gossip: true, faultWeights: { join: 20, leave: 5 } });
});
