// Plain fastify with one POST route and no work: the yardstick the checkout
// benchmark compares against in the same run. Prints its port like a replica does.
import Fastify from "fastify";

const app = Fastify({ logger: false });
app.post("/orders/checkout/:order_id", async () => "ok");
await app.listen({ host: "127.0.0.1", port: 0 });
console.log(`baseline serving http://localhost:${(app.server.address() as { port: number }).port}`);
process.on("SIGTERM", () => void app.close().then(() => process.exit(0)));
