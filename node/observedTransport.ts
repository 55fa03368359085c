// A transport that tells an observer (metrics) of every message it sends and
// receives, and otherwise passes everything through unchanged.
import type { PeerMessage } from "../cluster/messages.js";
import type { Transport } from "../cluster/transport.js";

export type MessageObserver = (direction: "sent" | "received", message: PeerMessage) => void;

export function observedTransport(inner: Transport, observe: MessageObserver): Transport {
  return {
    start: (events) =>
      inner.start({
        peerUp: (peer, actor) => events.peerUp(peer, actor),
        peerDown: (peer) => events.peerDown(peer),
        message: (peer, message) => {
          observe("received", message);
          events.message(peer, message);
        },
      }),
    send: (peer, message) => {
      const sent = inner.send(peer, message);
      if (sent) observe("sent", message);
      return sent;
    },
    close: () => inner.close(),
  };
}
