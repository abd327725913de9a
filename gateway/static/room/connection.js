// One room connection (docs/protocol.md): hello, reconnection with back-off, bids with a
// client_bid_id resent after a reconnection (the room answers a repeat from its record, so a
// retry never bids twice), and the server clock offset from pings.
// Events (CustomEvent, detail = the message): welcome, view, clock, suspended, resumed,
// closed, ack, reject, error, pong, and "state" (detail: {state, code, reason}).

const FINAL_CLOSES = new Set([4400, 4401, 4403, 4404, 1009]); // retrying cannot help (protocol.md)
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30000;
const PING_EVERY_MS = 20000; // keeps proxies from idling the socket out, and the offset fresh
const SYNC_PINGS = 5; // pings right after a welcome: the best of them sets the offset
const SYNC_SPACING_MS = 250;
const SAMPLES = 8; // the offset is the one of the fastest round trip among the last few

/** A client_bid_id: 1-64 of A-Z a-z 0-9 . _ : @ - ; random, so it is unique per bidder. */
export function newBidId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12)); // randomUUID needs https; this does not
  return "w-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class RoomConnection extends EventTarget {
  /** `url` the room's ws(s):// URL, `token` the room token (kept in memory only). */
  constructor(url, token) {
    super();
    this.url = url;
    this.token = token;
    this.state = "connecting"; // connecting | syncing | live | reconnecting | ended
    this.pending = new Map(); // client_bid_id -> bid message: sent, not answered yet
    this.samples = []; // [{offset, rtt}] of recent pongs
    this.offsetMs = 0; // server clock minus local clock
    this.uncertaintyMs = Infinity; // the offset is right within ± this (half the best round trip)
    this.retryMs = FIRST_RETRY_MS;
    this.lotsToSync = new Set();
    this.pingsSent = new Map(); // ping id -> local send time
    this.nextPing = 1;
    this.stats = { views: 0, messages: 0, reconnects: 0, renders: 0, maxRenderLagMs: 0 };
  }

  connect() {
    const ws = (this.ws = new WebSocket(this.url, "auction.v1.json"));
    ws.onopen = () => ws.send(JSON.stringify({ type: "hello", token: this.token }));
    ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    ws.onclose = (event) => this.dropped(ws, event.code, event.reason);
  }

  setState(state, extra = {}) {
    this.state = state;
    this.emit("state", { state, ...extra });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Server time now, in ms since the epoch. */
  serverNow() {
    return Date.now() + this.offsetMs;
  }

  receive(m) {
    this.stats.messages += 1;
    switch (m.type) {
      case "welcome":
        this.retryMs = FIRST_RETRY_MS;
        this.welcome = m;
        if (this.uncertaintyMs === Infinity) this.offsetMs = Date.parse(m.server_time) - Date.now(); // first guess
        // In sync once the current view of every lot has come (it follows the welcome).
        this.lotsToSync = new Set(m.lots.map((lot) => lot.lot_id));
        this.setState("syncing");
        this.emit("welcome", m);
        // Spaced out: pings sent together queue behind each other and the page's own start.
        for (let i = 0; i < SYNC_PINGS; i += 1) setTimeout(() => this.ping(), i * SYNC_SPACING_MS);
        clearInterval(this.pinger);
        this.pinger = setInterval(() => this.ping(), PING_EVERY_MS);
        break;
      case "view":
        this.stats.views += 1;
        this.emit("view", m);
        if (this.lotsToSync.delete(m.lot) && this.lotsToSync.size === 0) this.synced();
        break;
      case "pong":
        this.clockSample(m);
        this.emit("pong", m);
        break;
      case "ack":
      case "reject":
        this.pending.delete(m.client_bid_id);
        this.emit(m.type, m);
        break;
      case "error":
        if (m.client_bid_id) this.pending.delete(m.client_bid_id);
        this.emit("error", m);
        break;
      default:
        this.emit(m.type, m); // clock, suspended, resumed, closed; unknown types are ignored
    }
  }

  synced() {
    // Bids whose answer never came go out again with their ids: the room answers each from
    // its record if it was placed, or places it now if it was not. Never twice.
    for (const bid of this.pending.values()) this.ws.send(JSON.stringify(bid));
    this.stats.liveAt ??= performance.now(); // time to interactive: the form can send from here
    this.setState("live");
  }

  /** Send a bid; its answer comes as an "ack", "reject" or "error" event. Returns its id. */
  bid(lot, amount, clientBidId = newBidId()) {
    const bid = { type: "bid", lot, amount, client_bid_id: clientBidId };
    this.pending.set(clientBidId, bid);
    if (this.state === "live") this.ws.send(JSON.stringify(bid));
    return clientBidId;
  }

  ping() {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    const id = this.nextPing++;
    this.pingsSent.set(id, performance.now());
    this.ws.send(JSON.stringify({ type: "ping", id }));
  }

  clockSample(pong) {
    const sent = this.pingsSent.get(pong.id);
    if (sent === undefined) return;
    this.pingsSent.delete(pong.id);
    const now = performance.now();
    const rtt = now - sent;
    // The service read the ping between its send and the pong's arrival: the midpoint is
    // the best guess, wrong by at most half the round trip.
    const localMid = Date.now() - rtt / 2;
    this.samples.push({ offset: Date.parse(pong.server_time) - localMid, rtt });
    if (this.samples.length > SAMPLES) this.samples.shift();
    const best = this.samples.reduce((a, b) => (b.rtt < a.rtt ? b : a));
    this.offsetMs = best.offset;
    this.uncertaintyMs = best.rtt / 2 + 1; // + 1: server_time has µs, Date.now() whole ms
    Object.assign(this.stats, { offsetMs: this.offsetMs, uncertaintyMs: this.uncertaintyMs });
    this.emit("clocksync", { offsetMs: this.offsetMs, uncertaintyMs: this.uncertaintyMs });
  }

  dropped(ws, code, reason) {
    if (ws !== this.ws) return;
    clearInterval(this.pinger);
    this.pingsSent.clear();
    if (FINAL_CLOSES.has(code)) {
      this.setState("ended", { code, reason });
      return;
    }
    this.stats.reconnects += 1;
    const wait = this.retryMs * (0.75 + Math.random() * 0.5); // jitter: a restart is not a stampede
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    this.setState("reconnecting", { code, reason, retryInMs: wait });
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  /** Leave for good (no reconnection). */
  close() {
    clearTimeout(this.retryTimer);
    clearInterval(this.pinger);
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
    this.setState("ended", { code: 1000, reason: "" });
  }
}
