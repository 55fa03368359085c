// G1-G6 over seeded schedules of larger runs (longer chaos, up to 5 clients and 8
// overlapping faults), and small runs from another range of seeds. A failing seed
// prints its replay command: node dist/scripts/simulate.js --seed N --size large
import { describe } from "vitest";
import { sweep } from "./seedSweep.js";

describe("simulated clusters, large runs", () => {
  sweep("large", 100_001, 150, { size: "large" });
  // Disks lost in batch_init seeds: records lost with their maker while other records live on.
  sweep("large, wipe-heavy", 2_000_001, 100, { size: "large", gossip: true, faultWeights: { wipe: 20, drop: 10 } });
  sweep("small", 200_001, 850, { size: "small" });
  sweep("small", 303_901, 3600, { size: "small" });
  // The second half of seedsSmall's join-heavy seeds, here so that both files take about as long.
  sweep("small, replicas join", 700_151, 150, { size: "small", gossip: true, faultWeights: { join: 20, leave: 5 } });
});
