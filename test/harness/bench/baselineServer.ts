// Plain fastify with one POST route and no work: the yardstick the checkout
// benchmark compares against in the same run. Says it serves like a replica does
// (readySignal.ts).
import Fastify from "fastify";
import type { BaselineServingMessage } from "../readySignal.js";

const app = Fastify({ logger: false });
app.post("/orders/checkout/:order_id", async () => "ok");
await app.listen({ host: "127.0.0.1", port: 0 });
const serving: BaselineServingMessage = { type: "baseline-serving", port: (app.server.address() as { port: number }).port };
process.send?.(serving);
process.on("SIGTERM", () => void app.close().then(() => process.exit(0)));
