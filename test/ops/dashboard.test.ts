// The dashboard (GET /dashboard) in headless Chromium against a real 3-replica
// cluster: what the page shows of each replica (id, state, link up/down, lag)
// matches GET /cluster, also after a replica stops; it draws the request rates and
// the rights of the hottest items over the replicas. It saves a screenshot
// (DASHBOARD_SCREENSHOT=docs/dashboard.png to refresh the README's).
// Needs Debian's chromium at /usr/bin/chromium (.ci/run installs it).
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type Page, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClusterView, LocalCluster, clusterView, waitFor } from "../support/localCluster.js";
import { type ReplicaProcess, ReplicaFleet, jsonOf } from "../support/replicaProcess.js";
import { ShopClient } from "../support/shopClient.js";

const chromiumPath = "/usr/bin/chromium";

// The few DOM shapes the page functions below use (they run in the browser; this
// project compiles without the DOM library).
interface DomElement {
  readonly dataset: Record<string, string | undefined>;
  readonly textContent: string | null;
  querySelectorAll(selector: string): Iterable<DomElement>;
}
const screenshotPath = process.env.DASHBOARD_SCREENSHOT ?? join(tmpdir(), "escrow-shop-dashboard.png");

interface ReplicaRow {
  replica: string;
  state: string;
  link: string;
  lag: number;
  /** What the row's state and link cells say, as a reader sees them. */
  shown: string[];
}

/** The rows of the page's replica table, from the DOM. */
function pageRows(page: Page): Promise<ReplicaRow[]> {
  return page.$$eval("#replicas tbody tr", (rows) =>
    rows.map((row) => {
      const element = row as unknown as DomElement;
      const cells = [...element.querySelectorAll("td")].map((cell) => (cell.textContent ?? "").trim());
      return {
        replica: element.dataset["replica"] ?? "",
        state: element.dataset["state"] ?? "",
        link: element.dataset["link"] ?? "",
        lag: Number(element.dataset["lag"]),
        shown: [cells[0] ?? "", cells[1] ?? "", cells[2] ?? ""],
      };
    }),
  );
}

/** What the page should show, from a /cluster view: every member and peer, its state and this replica's link to it. */
function expectedRows(view: ClusterView): ReplicaRow[] {
  const ids = new Set([view.replicaId, ...view.members.map((member) => member.replicaId), ...view.peers.map((peer) => peer.replicaId)]);
  return [...ids].sort().map((replica) => {
    const state = view.members.find((member) => member.replicaId === replica)?.state ?? "unknown";
    const peer = view.peers.find((candidate) => candidate.replicaId === replica);
    const link = replica === view.replicaId ? "self" : peer === undefined ? "never" : peer.up ? "up" : "down";
    return { replica, state, link, lag: peer?.lag ?? 0, shown: [replica, state, link] };
  });
}

/** Until the page and a /cluster read taken right after it agree (the page polls every second). */
async function expectPageMatchesCluster(page: Page, replica: ReplicaProcess): Promise<ReplicaRow[]> {
  let last: { shown: ReplicaRow[]; expected: ReplicaRow[] } | undefined;
  try {
    return await waitFor(async () => {
      const shown = await pageRows(page);
      const expected = expectedRows(await clusterView(replica));
      last = { shown, expected };
      return JSON.stringify(shown) === JSON.stringify(expected) ? shown : undefined;
    }, 15_000);
  } catch (error) {
    expect(last?.shown, "the dashboard's replica table against GET /cluster").toEqual(last?.expected);
    throw error;
  }
}

describe("GET /dashboard in headless Chromium", () => {
  const fleet = new ReplicaFleet();
  let cluster: LocalCluster;
  let browser: Browser | undefined;

  beforeAll(async () => {
    if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: apt-get install -y chromium (.ci/run does)`);
    cluster = await LocalCluster.start(fleet, 3);
    browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await fleet.cleanup();
  });

  it("shows each replica's state, link and lag as /cluster does, the rates, and the hot items' rights per replica", { timeout: 120_000 }, async () => {
    const r1 = cluster.member(0);
    const shop = new ShopClient(r1);
    // Stock and credit added at r1 are spread over the three replicas; checkouts at r1 then use them.
    const items = [await shop.stockedItem(1, 600), await shop.stockedItem(2, 600)];
    const users = [await shop.fundedUser(10_000), await shop.fundedUser(10_000), await shop.fundedUser(10_000)];

    const page = await browser!.newPage({ viewport: { width: 1280, height: 1000 } });
    const answer = await page.goto(`${r1.url}/dashboard`);
    expect(answer?.status()).toBe(200);
    expect(await page.title()).toBe("escrow-shop dashboard");
    await page.waitForSelector("body[data-updated-ms]");
    expect(await page.textContent("#served-by")).toBe("r1");
    const rows = await expectPageMatchesCluster(page, r1);
    expect(rows.map((row) => [row.replica, row.state, row.link])).toEqual([
      ["r1", "active", "self"],
      ["r2", "active", "up"],
      ["r3", "active", "up"],
    ]);

    // Some seconds of checkouts at r1 (at most 300: the first item's 600 units last), so
    // the chart and the hot keys have something to show.
    const loadUntil = Date.now() + 5000;
    for (let index = 0; Date.now() < loadUntil && index < 300; index++) {
      const lines: [string, number][] =
        index % 3 === 0
          ? [
              [items[0]!, 1],
              [items[1]!, 1],
            ]
          : [[items[0]!, 1]];
      const order = await shop.orderWith(users[index % users.length]!, lines);
      expect((await shop.post(`/orders/checkout/${order}`)).status).toBe(200);
    }
    // The chart draws a line per series, a point per poll (once two polls give a rate).
    await page.waitForSelector('#rates polyline[data-series="requests"]');
    const chartPoints = await waitFor(async () => {
      const points = (await page.getAttribute('#rates polyline[data-series="requests"]', "points"))?.split(" ") ?? [];
      return points.length >= 3 ? points : undefined;
    });
    expect(chartPoints.every((point) => /^[0-9.]+,[0-9.]+$/.test(point))).toBe(true);
    expect(await page.$$('#rates polyline[data-series="ok"]')).toHaveLength(1);

    // The hottest item is the first one, its rights spread over the replicas add up to its stock.
    const hottest = items[0]!;
    await page.waitForSelector(`#hot-items tr[data-key="${hottest}"]`);
    const stock = (await shop.item(hottest)).stock;
    const segments = await waitFor(async () => {
      const shown = await page.$$eval(`#hot-items tr[data-key="${hottest}"] .bar span`, (spans) =>
        spans.map((span) => [(span as unknown as DomElement).dataset["replica"] ?? "", Number((span as unknown as DomElement).dataset["rights"])] as const),
      );
      return shown.reduce((sum, [, rights]) => sum + rights, 0) === stock ? shown : undefined;
    });
    expect(segments.every(([replica]) => ["r1", "r2", "r3"].includes(replica))).toBe(true);
    const hotUsers = await page.$$eval("#hot-users tbody tr[data-key]", (found) => found.map((row) => (row as unknown as DomElement).dataset["key"]));
    expect(new Set(hotUsers)).toEqual(new Set(users));
    await expectPageMatchesCluster(page, r1);
    await page.screenshot({ path: screenshotPath, fullPage: true });

    // r3 stops: r1's link to it goes down, on the page as in /cluster.
    await cluster.member(2).stop();
    await waitFor(async () => ((await clusterView(r1)).peers.some((peer) => peer.replicaId === "r3" && !peer.up) ? true : undefined));
    const afterStop = await expectPageMatchesCluster(page, r1);
    expect(afterStop.find((row) => row.replica === "r3")).toMatchObject({ link: "down", shown: ["r3", "active", "down"] });
    const data = jsonOf(await r1.get("/dashboard/data")) as { replicaId: string; totals: { checkoutsOk: number } };
    expect(data.replicaId).toBe("r1");
    expect(data.totals.checkoutsOk).toBeGreaterThan(0);
  });
});
