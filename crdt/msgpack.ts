// The project's one msgpack setup, for states, records, peer messages and handshakes:
// plain msgpack with no shared record structures (every value decodes on its own),
// maps decoded as Maps (no object prototype from untrusted bytes), no extension types.
import { Packr } from "msgpackr";

export const packr = new Packr({ useRecords: false, mapsAsObjects: false, moreTypes: false });
