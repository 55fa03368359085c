// What the benchmark reads about its processes from /proc (Linux only): CPU time,
// resident memory, children, and a replica's id from its environment.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ). */
export const clockTicksPerSecond: number = (() => {
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isSafeInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** User + system CPU time of `pid` so far, in milliseconds; null once it is gone. */
export function cpuMs(pid: number): number | null {
  const stat = readOrNull(`/proc/${pid}/stat`);
  if (stat === null) return null;
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so utime (field 14) and stime (field 15) are at 11 and 12.
  const ticks = Number(fields[11]) + Number(fields[12]);
  if (!Number.isFinite(ticks)) throw new Error(`cannot read the CPU time from /proc/${pid}/stat`);
  return (ticks * 1000) / clockTicksPerSecond;
}

/** Resident memory of `pid` (VmRSS) in mebibytes; null once it is gone. */
export function rssMiB(pid: number): number | null {
  const status = readOrNull(`/proc/${pid}/status`);
  const match = status === null ? null : /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match === null ? null : Number(match[1]) / 1024;
}

/** The direct children of `pid`, from /proc/<pid>/task/<tid>/children. */
export function childPids(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const children = tasks.flatMap((task) => (readOrNull(`/proc/${pid}/task/${task}/children`) ?? "").split(" "));
  return [...new Set(children.filter((text) => /^\d+$/.test(text)).map(Number))];
}

/** The value of `name` in the environment `pid` was started with; null if absent or unreadable. */
export function environmentValue(pid: number, name: string): string | null {
  const environment = readOrNull(`/proc/${pid}/environ`);
  if (environment === null) return null;
  const entry = environment.split("\0").find((line) => line.startsWith(`${name}=`));
  return entry === undefined ? null : entry.slice(name.length + 1);
}

export function isAlive(pid: number): boolean {
  return readOrNull(`/proc/${pid}/stat`) !== null;
}

/** Sum of cpuMs over `pids`, leaving out processes that are gone. */
export function cpuMsSum(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + (cpuMs(pid) ?? 0), 0);
}
