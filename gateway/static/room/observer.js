// The observer's and buyer's page (/room/{auction_id}/observe): the anonymised ladder per
// lot, bids per minute, extensions and the time left. With the buyer's API key (kept in
// memory only) it also suspends, resumes and cancels over the RPC, and shows the results
// with identities once every lot has ended (the RPC decides what the key may see).

import { announce, askToken, auctionId, closeText, confirmDialog, el, roomUrl, seat, setText, setUpLanguage,
  suspensionHandlers, tokenFromFragment } from "./common.js";
import { RoomConnection } from "./connection.js";
import { count, current, money, remaining, t, time, translate } from "./i18n.js";
import { fromMinor, toMinor } from "./money.js";

const TICK_MS = 250;
const RATE_WINDOW_MS = 60000;
const id = auctionId();
// First thing, before any await: the token leaves the address bar and the history entry.
const fragmentToken = tokenFromFragment();
const lots = new Map(); // lot_id -> {rules, view, card, fields, samples: [{t, bids}], result}
let conn = null;
let welcome = null;
let apiKey = null; // the buyer's key: memory only, gone with the page
let results = null; // GET /results, once every lot has ended (with a key)
let connection = { state: "connecting" }; // the latest "state" event: {state, code, reason}
let dirty = new Set();
let framed = false;

async function rpc(method, path, body) {
  const answer = await fetch(`/api/v1/auctions/${encodeURIComponent(id)}${path}`, {
    method, headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store", credentials: "omit",
  });
  const data = await answer.json().catch(() => ({ error: { code: "http_error", message: String(answer.status) } }));
  if (!answer.ok) throw Object.assign(new Error(data.error?.message ?? ""), { code: data.error?.code ?? "http_error" });
  return data;
}

async function main() {
  const language = setUpLanguage(renderAll); // loads while the room connects (see bidder.js)
  let token = fragmentToken ?? seat.get(id, "observer");
  if (!token) await language;
  while (!token) {
    const given = await askToken("login");
    if (given.key.trim()) {
      apiKey = given.key.trim();
      try {
        token = (await rpc("POST", "/observers", { name: "buyer-web" })).token; // the buyer may ask for one
      } catch (error) {
        apiKey = null;
        setText("login-error", t("rpc.failed", { code: error.code, text: t(`rpc.${error.code}`) }));
      }
    } else if (given.token.trim()) {
      token = given.token.trim();
    }
  }
  // A token the page got with the key lives as long as the key (memory): after a reload
  // the buyer pastes the key again rather than finding a page without its controls.
  if (apiKey === null) seat.set(id, "observer", token);
  document.getElementById("controls").hidden = apiKey === null;
  for (const button of document.querySelectorAll("#controls button")) button.addEventListener("click", () => command(button.dataset.action));
  conn = new RoomConnection(roomUrl(id), token);
  for (const type of ["welcome", "view", "clock", "suspended", "resumed", "closed", "state", "clocksync"]) {
    conn.addEventListener(type, (event) => handlers[type](event.detail));
  }
  conn.connect();
  window.__roomStats = conn.stats;
  await language;
  renderAll();
  setInterval(tick, TICK_MS);
}

const handlers = {
  welcome(m) {
    welcome = m;
    if (!lots.size) buildLots(m);
    renderAll();
  },
  view(m) {
    const lot = lots.get(m.lot);
    if (!lot) return;
    if (lot.view && m.extensions > lot.view.extensions) extended(lot, m);
    lot.view = m;
    lot.samples.push({ t: conn.serverNow(), bids: m.bids });
    schedule(m.lot);
  },
  clock(m) {
    const lot = lots.get(m.lot);
    if (!lot?.view) return;
    if (m.extensions > lot.view.extensions) extended(lot, m);
    lot.view = { ...lot.view, status: m.status, close_at: m.close_at, extensions: m.extensions };
    schedule(m.lot);
  },
  ...suspensionHandlers(lots, schedule),
  closed(m) {
    const lot = lots.get(m.lot);
    if (!lot) return;
    lot.result = m;
    schedule(m.lot);
    if ([...lots.values()].every((l) => l.result)) finished();
  },
  state(detail) {
    connection = detail;
    if (detail.state === "ended" && (detail.code === 4401 || detail.code === 4403)) seat.clear(id, "observer");
    renderAll();
  },
  clocksync() {
    renderHeader();
  },
};

function buildLots(m) {
  const template = document.getElementById("lot-template");
  const container = document.getElementById("lots");
  const select = document.getElementById("control-lot");
  select.replaceChildren(el("option", "", t("controls.all")));
  select.firstElementChild.value = "";
  select.firstElementChild.dataset.i18n = "controls.all";
  for (const rules of m.lots) {
    const card = template.content.firstElementChild.cloneNode(true);
    const fields = {};
    for (const node of card.querySelectorAll("[data-f]")) fields[node.dataset.f] = node;
    card.dataset.lot = rules.lot_id;
    card.id = `lot-${rules.lot_id.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    fields.title.id = `${card.id}-title`;
    card.setAttribute("aria-labelledby", fields.title.id);
    lots.set(rules.lot_id, { rules, view: null, card, fields, samples: [], result: null });
    container.append(card);
    const option = el("option", "", `${rules.lot_id} — ${rules.title}`);
    option.value = rules.lot_id;
    select.append(option);
  }
  translate(container);
}

async function command(action) {
  const lotId = document.getElementById("control-lot").value || null;
  const reason = document.getElementById("control-reason").value.trim();
  const target = lotId ? `${lotId} — ${lots.get(lotId).rules.title}` : t("controls.all");
  const ok = await confirmDialog(t(`controls.confirm_${action}`), t("controls.confirm_body", { target, reason: reason || "—" }));
  document.getElementById(`do-${action}`).focus();
  if (!ok) return;
  const body = action === "resume" ? { lot_id: lotId } : { lot_id: lotId, reason };
  const feedback = document.getElementById("control-feedback");
  try {
    await rpc("POST", `/${action}`, body);
    feedback.dataset.kind = "ok";
    setText(feedback, t(`controls.done_${action}`, { target }));
  } catch (error) {
    feedback.dataset.kind = "bad";
    setText(feedback, t("rpc.failed", { code: error.code, text: t(`rpc.${error.code}`) }));
  }
}

async function finished() {
  if (apiKey) {
    for (let attempt = 0; attempt < 20 && !results?.final; attempt += 1) {
      try {
        results = await rpc("GET", "/results");
      } catch {
        // the room already said how each lot ended; the table falls back to that
      }
      if (!results?.final) await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  renderResults();
}

function extended(lot, m) {
  lot.card.classList.remove("flash");
  void lot.card.offsetWidth; // restart the animation
  lot.card.classList.add("flash");
  announce(t("announce.extended", { lot: lot.rules.title, n: count(m.extensions), time: time(Date.parse(m.close_at)) }));
}

function schedule(lotId) {
  dirty.add(lotId);
  if (framed) return;
  framed = true;
  requestAnimationFrame(() => { // one render per frame: the latest view of each lot wins
    framed = false;
    const batch = dirty;
    dirty = new Set();
    for (const lotId2 of batch) render(lots.get(lotId2));
  });
}

function renderAll() {
  renderHeader();
  renderBanner();
  for (const lot of lots.values()) render(lot);
  renderResults();
}

function renderBanner() {
  const banner = document.getElementById("banner");
  const { state, code, reason } = connection;
  banner.dataset.kind = state;
  banner.hidden = !(state === "reconnecting" || state === "ended");
  if (state === "reconnecting") setText(banner, t("banner.reconnecting"));
  if (state === "ended") setText(banner, closeText(code, reason));
}

function renderHeader() {
  if (!welcome) return;
  setText("auction-title", welcome.title);
  setText("auction-meta", t("meta_observer", { id: welcome.auction_id, currency: welcome.currency,
    visibility: t(`visibility_short.${welcome.visibility}`) }));
  setText("whoami", t(apiKey ? "role.buyer" : "role.observer"));
  const sync = document.getElementById("clock-sync");
  const u = conn.uncertaintyMs;
  sync.dataset.good = String(u <= 50);
  setText(sync, u === Infinity ? t("sync.pending") : t(u <= 50 ? "sync.good" : "sync.poor", { ms: count(Math.ceil(u)) }));
}

function statusOf(lot) {
  return lot.result ? (lot.result.close_reason === "cancelled" ? "cancelled" : "closed") : (lot.view?.status ?? "scheduled");
}

function render(lot) {
  if (!lot || !welcome) return;
  const { fields, rules } = lot;
  const v = lot.view;
  const m = (amount) => money(amount, welcome.currency, welcome.decimals);
  const status = statusOf(lot);
  setText(fields.title, `${rules.lot_id} — ${rules.title}`);
  setText(fields.status, t(`status.${status}`));
  fields.status.dataset.status = status;
  lot.card.dataset.status = status;
  setText(fields.best, m(v?.best_price));
  setText(fields.active, count(v?.active_bidders ?? 0));
  setText(fields.bids, t("lot.bids_count", { bids: count(v?.bids ?? 0), rejected: count(v?.rejected_bids ?? 0) }));
  setText(fields.extensions, count(v?.extensions ?? 0));
  setText(fields.estimate, m(rules.estimate));
  setText(fields.reserve, m(rules.reserve_price));
  setText(fields.ceiling, m(rules.starting_price));
  if (v?.close_at) setText(fields.closes, t("lot.closes_at", { time: time(Date.parse(v.close_at)) }));
  fields.result.hidden = !lot.result;
  if (lot.result) {
    const r = lot.result;
    setText(fields.result, r.outcome === "awarded" ? t("result.awarded", { winner: r.winner, price: m(r.awarded_price) })
      : t("result.unsuccessful", { lot: rules.title, reason: t(`reason.${r.unsuccessful_reason}`) }));
  }
  const body = fields["ladder-body"];
  const ladder = v?.ladder ?? [];
  while (body.rows.length > ladder.length) body.deleteRow(-1);
  ladder.forEach((line, i) => {
    const row = body.rows[i] ?? body.insertRow();
    while (row.cells.length < 3) row.insertCell();
    setText(row.cells[0], count(line.rank));
    setText(row.cells[1], line.pseudonym);
    setText(row.cells[2], m(line.price));
  });
  tickLot(lot, conn.serverNow());
}

function renderResults() {
  const section = document.getElementById("results");
  const ended = lots.size && [...lots.values()].every((l) => l.result);
  section.hidden = !ended;
  if (!ended) return;
  const m = (amount) => money(amount, welcome.currency, welcome.decimals);
  const withIds = Boolean(results?.identities);
  setText("results-note", t(withIds ? "results.identities" : "results.anonymous"));
  const body = document.getElementById("results-body");
  body.replaceChildren();
  for (const lot of lots.values()) {
    const r = lot.result;
    const fromRpc = results?.lots.find((l) => l.lot_id === lot.rules.lot_id);
    const awarded = r.outcome === "awarded";
    const winner = awarded ? (withIds && fromRpc?.winner_id ? `${fromRpc.winner_id} (${r.winner})` : r.winner) : "—";
    const savings = awarded ? fromMinor(toMinor(lot.rules.estimate, welcome.decimals) - toMinor(r.awarded_price, welcome.decimals),
      welcome.decimals) : null;
    const row = body.insertRow();
    for (const text of [`${lot.rules.lot_id} — ${lot.rules.title}`, awarded ? t("outcome.awarded")
      : t(`reason.${r.unsuccessful_reason}`), winner, awarded ? m(r.awarded_price) : "—", savings === null ? "—" : m(savings)]) {
      row.insertCell().textContent = text;
    }
  }
}

function tick() {
  if (!conn) return;
  const now = conn.serverNow();
  for (const lot of lots.values()) tickLot(lot, now);
}

function tickLot(lot, now) {
  const { fields } = lot;
  const v = lot.view;
  const status = statusOf(lot);
  let left = null;
  if (status === "open" && v) left = Date.parse(v.close_at) - now;
  else if (status === "scheduled" && welcome) left = Date.parse(welcome.start) - now;
  setText(fields["clock-label"], t(status === "open" ? "clock.closes_in" : status === "scheduled" ? "clock.opens_in" : `clock.${status}`));
  setText(fields.countdown, left === null ? "" : remaining(left));
  const final = status === "open" && left !== null && left < 60000;
  if (lot.card.classList.contains("final") !== final) lot.card.classList.toggle("final", final);
  // Bids per minute over the last minute (or what there is of it, from 5 s on).
  while (lot.samples.length > 1 && lot.samples[1].t < now - RATE_WINDOW_MS) lot.samples.shift();
  const first = lot.samples[0];
  const span = first ? now - first.t : 0;
  const rate = span >= 5000 && v ? ((v.bids - first.bids) * 60000) / span : null;
  setText(fields.rate, rate === null ? "—" : new Intl.NumberFormat(current.locale, { maximumFractionDigits: 1 }).format(rate));
}

main();
