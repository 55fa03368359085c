// The transport of a replica configured without peers: a cluster of one.
import type { Transport } from "./transport.js";

export const isolatedTransport: Transport = {
  start: async () => {},
  send: () => false,
  close: async () => {},
};
