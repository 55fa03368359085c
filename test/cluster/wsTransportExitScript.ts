// Run as a child process by wsTransport.test.ts (from dist/): three transports form a
// mesh, exchange a message, a stranger and a half-open dial are left hanging, then all
// close. The process must then exit on its own: any timer or socket left behind keeps
// it alive, and the parent test fails.
import { connect, createServer } from "node:net";
import { connectAll, startReplica, waitFor, waitForMesh } from "./wsTransportHarness.js";

const replicas = [await startReplica("a"), await startReplica("b"), await startReplica("c")];
connectAll(replicas);
await waitForMesh(replicas);
const [a, b] = replicas;
if (a === undefined || b === undefined) throw new Error("unreachable");
a.transport.send("b", { type: "ack", seq: 1 });
await waitFor("b gets the ack", () => b.recorder.messagesFrom("a").length === 1);
// A stranger mid-connection and a dial to a port nobody answers on, both unfinished at close.
const stranger = connect({ host: "127.0.0.1", port: b.transport.port });
stranger.on("error", () => undefined);
await new Promise<void>((resolve) => stranger.once("connect", () => resolve()));
stranger.write("GET /cluster/v1 HTTP/1.1\r\n");
// "z" accepts TCP and never answers, so a's dial to it hangs mid-upgrade.
let silentConnections = 0;
const silent = createServer((socket) => {
  silentConnections += 1;
  socket.resume(); // read and drop, so the FIN of a's abandoned dial closes it
});
await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
const silentAddress = silent.address();
if (silentAddress === null || typeof silentAddress === "string") throw new Error("no port");
const silentPeer = { replicaId: "z", address: `127.0.0.1:${silentAddress.port}` };
a.transport.setPeers([...replicas.slice(1).map((replica) => replica.address), silentPeer]);
await waitFor("a dials z", () => silentConnections === 1);
await Promise.all(replicas.map((replica) => replica.transport.close()));
await new Promise<void>((resolve) => silent.close(() => resolve()));
process.stdout.write("closed\n");
