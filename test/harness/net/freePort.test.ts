import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { freePort } from "./freePort.js";

describe("freePort", () => {
  it("gives bindable ports below the ephemeral range, so no outgoing connection can hold one while its replica restarts", async () => {
    const ephemeralLow = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    for (let index = 0; index < 20; index++) {
      const port = await freePort();
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(ephemeralLow);
      const server = createServer();
      await new Promise<void>((resolve, reject) => server.once("error", reject).listen({ host: "127.0.0.1", port }, resolve));
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
