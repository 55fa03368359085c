import { createServer } from "node:net";
import { readFileSync } from "node:fs";

/**
 * A port that is free on `host` now, drawn below the kernel's ephemeral range: a
 * port the OS hands out (listen on 0) can be taken as the local end of any outgoing
 * connection while its replica is down, and the restart then fails with EADDRINUSE.
 * Another process could still take it before use; callers retry or accept that.
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const [low, high] = portRangeBelowEphemeral();
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await bindable(host, port)) return port;
  }
  throw new Error(`no free port on ${host} in ${low}..${high} after 100 tries`);
}

/** [low, high) under the ephemeral range (Linux: net.ipv4.ip_local_port_range), above the well-known ports. */
function portRangeBelowEphemeral(): [number, number] {
  try {
    const ephemeralLow = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(ephemeralLow) && ephemeralLow > 12_000) return [10_000, ephemeralLow];
  } catch {
    // Not Linux: fall through to the IANA default, whose ephemeral range starts at 49152.
  }
  return [10_000, 32_768];
}

function bindable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ host, port }, () => server.close(() => resolve(true)));
  });
}
