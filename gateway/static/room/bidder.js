// The bidder's page (/room/{auction_id}): one lot card per lot, the bid form, the countdown
// on the server's clock. Everything shown comes from the room's messages; the page computes
// only the step bounds (as the core does) and never shows what the view does not carry.

import { drawChart } from "./chart.js";
import { announce, askToken, auctionId, closeText, confirmDialog, roomUrl, seat, setText, setUpLanguage,
  suspensionHandlers, tokenFromFragment } from "./common.js";
import { RoomConnection } from "./connection.js";
import { count, current, money, number, remaining, t, time, translate } from "./i18n.js";
import { bounds, fromMinor, parsePercent, parseTyped, toMinor } from "./money.js";

const FINAL_MS = 60000; // the final minute is emphasised
const TICK_MS = 100;
const DEFAULT_CONFIRM_DROP = "5";
// Refusals a new token from the portal cures (protocol.md, close codes): the form comes back.
const TOKEN_PROBLEMS = new Set(["token_missing", "token_invalid", "token_expired", "token_revoked"]); // percent: a bid dropping more than this asks for confirmation

const id = auctionId();
// First thing, before any await: the token leaves the address bar and the history entry.
const fragmentToken = tokenFromFragment();
const lots = new Map(); // lot_id -> {rules, view, card, fields, bids: [{t, minor}], result, lastRank}
let conn = null;
let welcome = null;
let dirty = new Set();
let framed = false;
let ended = null; // {code, reason} of a final close, if the room closed the connection for good

function confirmDrop() {
  const asked = new URLSearchParams(location.search).get("confirm_drop");
  return asked && /^\d{1,2}(\.\d{1,4})?$/.test(asked) ? asked : DEFAULT_CONFIRM_DROP;
}

async function main() {
  // The catalogue loads while the room connects: whatever renders before it has come is
  // rendered again (translated) once it has.
  const language = setUpLanguage(renderAll);
  let token = fragmentToken ?? seat.get(id, "token");
  if (!token) {
    await language; // the login form speaks the person's language
    token = (await askToken("login")).token.trim();
  }
  seat.set(id, "token", token); // this tab only: a reload keeps the seat, closing the tab forgets it
  conn = new RoomConnection(roomUrl(id), token);
  for (const type of ["welcome", "view", "clock", "suspended", "resumed", "closed", "ack", "reject", "error",
    "state", "clocksync"]) {
    conn.addEventListener(type, (event) => handlers[type](event.detail));
  }
  conn.connect();
  window.__roomStats = conn.stats; // counters for the tests and the benchmark
  await language;
  renderAll();
  setInterval(tick, TICK_MS);
}

const handlers = {
  welcome(m) {
    welcome = m;
    if (!lots.size) buildLots(m);
    renderHeader();
  },
  view(m) {
    const lot = lots.get(m.lot);
    if (!lot) return;
    const before = lot.view;
    lot.view = m;
    if (before && m.extensions > before.extensions) extended(lot, m.close_at, m.extensions);
    if (m.rank !== null && before && m.rank !== lot.lastRank) {
      announce(t("announce.rank", { lot: lot.rules.title, rank: count(m.rank), of: count(m.active_bidders) }));
    }
    lot.lastRank = m.rank;
    schedule(m.lot);
  },
  clock(m) {
    const lot = lots.get(m.lot);
    if (!lot?.view) return;
    const moved = m.extensions > lot.view.extensions;
    lot.view = { ...lot.view, status: m.status, close_at: m.close_at, extensions: m.extensions };
    if (moved) extended(lot, m.close_at, m.extensions);
    schedule(m.lot);
  },
  ...suspensionHandlers(lots, schedule),
  closed(m) {
    const lot = lots.get(m.lot);
    if (!lot) return;
    lot.result = m;
    if (lot.view) lot.view = { ...lot.view, status: m.close_reason === "cancelled" ? "cancelled" : "closed" };
    announce(resultText(lot), true);
    schedule(m.lot);
  },
  ack(m) {
    const lot = lots.get(m.lot);
    if (!lot) return;
    lot.sending = null;
    if (!m.duplicate || !lot.bids.some((b) => b.id === m.client_bid_id)) {
      lot.bids.push({ id: m.client_bid_id, t: Date.parse(m.time), minor: toMinor(m.amount, welcome.decimals) });
      seat.set(id, `bids.${m.lot}`, JSON.stringify(lot.bids.map((b) => [b.id, b.t, fromMinor(b.minor, welcome.decimals)])));
    }
    lot.feedback = { kind: "ok", text: t("bid.accepted", { amount: money(m.amount, welcome.currency, welcome.decimals),
      rank: count(m.rank) }) };
    announce(lot.feedback.text);
    if (lot.view && lot.view.own_price !== m.amount) lot.view = { ...lot.view, own_price: m.amount, rank: m.rank };
    lot.fields.amount.value = "";
    schedule(m.lot);
  },
  reject(m) {
    const lot = lots.get(m.lot);
    if (!lot) return;
    lot.sending = null;
    lot.feedback = { kind: "bad", text: t("bid.rejected", { code: m.code, text: t(`reject.${m.code}`) }) };
    announce(lot.feedback.text, true);
    schedule(m.lot);
  },
  error(m) {
    const lot = [...lots.values()].find((l) => l.sending === m.client_bid_id);
    if (!lot) return;
    lot.sending = null;
    lot.feedback = { kind: "bad", text: t("bid.rejected", { code: m.code, text: t(`reject.${m.code}`) }) };
    schedule(lot.rules.lot_id);
  },
  state({ state, code, reason }) {
    ended = state === "ended" ? { code, reason } : null;
    if (state === "ended" && (code === 4401 || code === 4403)) seat.clear(id, "token");
    if (state === "ended" && TOKEN_PROBLEMS.has(reason)) newToken(); // bids not answered yet stay pending
    if (state === "live") announce(t("announce.live"));
    renderAll();
  },
  clocksync() {
    renderHeader();
  },
};

/** Ask for a fresh token (the login form) and reconnect with it, same pending bids. */
async function newToken() {
  const token = (await askToken("login")).token.trim();
  seat.set(id, "token", token);
  ended = null;
  conn.token = token;
  conn.connect();
}

function buildLots(m) {
  const template = document.getElementById("lot-template");
  const container = document.getElementById("lots");
  for (const rules of m.lots) {
    const card = template.content.firstElementChild.cloneNode(true);
    const fields = {};
    for (const node of card.querySelectorAll("[data-f]")) fields[node.dataset.f] = node;
    const slug = `lot-${rules.lot_id.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    card.id = slug;
    card.dataset.lot = rules.lot_id;
    fields.title.id = `${slug}-title`;
    card.setAttribute("aria-labelledby", fields.title.id);
    fields.amount.id = `${slug}-amount`;
    fields["amount-label"].htmlFor = fields.amount.id;
    fields.feedback.id = `${slug}-feedback`;
    fields.amount.setAttribute("aria-describedby", `${slug}-bounds ${slug}-feedback`);
    fields.bounds.id = `${slug}-bounds`;
    fields.feedback.setAttribute("aria-live", "polite");
    const kept = JSON.parse(seat.get(id, `bids.${rules.lot_id}`) ?? "[]");
    const lot = { rules, view: null, card, fields, result: null, lastRank: null, sending: null, feedback: null,
      bids: kept.map(([bid, at, amount]) => ({ id: bid, t: at, minor: toMinor(amount, m.decimals) })) };
    fields.form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit(lot);
    });
    lots.set(rules.lot_id, lot);
    container.append(card);
  }
  translate(container);
}

async function submit(lot) {
  if (conn.state !== "live" || lot.sending) return;
  const { decimals, currency } = welcome;
  let amount;
  try {
    amount = parseTyped(lot.fields.amount.value, current.locale, decimals);
  } catch (error) {
    lot.feedback = { kind: "bad", text: t("bid.invalid", { code: error.code, text: t(`input.${error.code}`, error.params) }) };
    announce(lot.feedback.text, true);
    render(lot);
    lot.fields.amount.focus();
    return;
  }
  // Fat-finger guard: a drop of more than the configured share from the own price (or the
  // ceiling before a first bid) asks first. The server's max_step, if any, still applies.
  const reference = toMinor(lot.view?.own_price ?? lot.rules.starting_price, decimals);
  const minor = toMinor(amount, decimals);
  const [n, d] = parsePercent(confirmDrop());
  if (reference > minor && (reference - minor) * 100n * d > n * reference) {
    const share = Number(((reference - minor) * 10000n) / reference) / 100;
    const ok = await confirmDialog(t("confirm.title"), t("confirm.body", {
      amount: money(amount, currency, decimals), share: new Intl.NumberFormat(current.locale,
        { maximumFractionDigits: 2 }).format(share), reference: money(fromMinor(reference, decimals), currency, decimals) }));
    lot.fields.amount.focus();
    if (!ok) return;
  }
  // Sending disables the form, which drops the focus: it comes back with the answer, so
  // that a keyboard user types the next bid without hunting for the field.
  lot.refocus = true;
  lot.sending = conn.bid(lot.rules.lot_id, amount);
  lot.feedback = { kind: "wait", text: t("bid.sending", { amount: money(amount, currency, decimals) }) };
  render(lot);
}

function extended(lot, closeAt, extensions) {
  const card = lot.card;
  card.classList.remove("flash");
  void card.offsetWidth; // restart the animation
  card.classList.add("flash");
  lot.extendedText = t("lot.extended", { n: count(extensions), time: time(Date.parse(closeAt)) });
  announce(t("announce.extended", { lot: lot.rules.title, n: count(extensions), time: time(Date.parse(closeAt)) }));
}

function schedule(lotId) {
  dirty.add(lotId);
  if (framed) return;
  framed = true;
  const since = performance.now();
  // One render per frame, whatever the rate of views: the latest view of each lot wins.
  requestAnimationFrame(() => {
    framed = false;
    const batch = dirty;
    dirty = new Set();
    for (const lotId2 of batch) render(lots.get(lotId2));
    renderBanner();
    const stats = conn.stats; // how far the display trails the messages (the benchmark reads it)
    stats.renders += 1;
    stats.maxRenderLagMs = Math.max(stats.maxRenderLagMs, performance.now() - since);
  });
}

function renderAll() {
  renderHeader();
  renderBanner();
  for (const lot of lots.values()) render(lot);
}

function renderHeader() {
  if (!welcome) return;
  setText("auction-title", welcome.title);
  setText("auction-meta", t("meta", { id: welcome.auction_id, currency: welcome.currency,
    visibility: t(`visibility.${welcome.visibility}`) }));
  setText("whoami", t("whoami", { pseudonym: welcome.pseudonym ?? "—" }));
  const sync = document.getElementById("clock-sync");
  const u = conn.uncertaintyMs;
  sync.dataset.good = String(u <= 50);
  setText(sync, u === Infinity ? t("sync.pending") : t(u <= 50 ? "sync.good" : "sync.poor", { ms: count(Math.ceil(u)) }));
}

/** One banner, the most pressing first: the connection, then the auction's state. */
function renderBanner() {
  const banner = document.getElementById("banner");
  const all = [...lots.values()];
  const suspended = all.filter((lot) => statusOf(lot) === "suspended");
  let kind = "";
  let text = "";
  if (ended) [kind, text] = ["ended", closeText(ended.code, ended.reason)];
  else if (conn?.state === "reconnecting" || (conn?.state === "syncing" && conn.stats.reconnects)) [kind, text] = ["reconnecting", t("banner.reconnecting")];
  else if (suspended.length) {
    [kind, text] = ["suspended", t("banner.suspended", { lots: suspended.map((lot) => lot.rules.lot_id).join(", "),
      reason: suspended[0].reason || "—" })];
  } else if (all.length && all.every((lot) => lot.result)) [kind, text] = ["finished", t("banner.finished")];
  banner.hidden = !kind;
  banner.dataset.kind = kind;
  setText(banner, text);
}

function statusOf(lot) {
  return lot.result ? (lot.result.close_reason === "cancelled" ? "cancelled" : "closed") : (lot.view?.status ?? "scheduled");
}

function render(lot) {
  if (!lot || !welcome) return;
  const { fields, rules } = lot;
  const v = lot.view;
  const { currency, decimals, visibility } = welcome;
  const m = (amount) => money(amount, currency, decimals);
  const status = statusOf(lot);
  setText(fields.title, `${rules.lot_id} — ${rules.title}`);
  setText(fields.status, t(`status.${status}`));
  fields.status.dataset.status = status;
  lot.card.dataset.status = status;
  for (const node of lot.card.querySelectorAll("[data-show]")) {
    node.hidden = !(node.dataset.show === "ladder" ? visibility === "ladder" : visibility !== "rank");
  }
  setText(fields.rank, v?.rank ? t("lot.rank_of", { rank: count(v.rank), of: count(v.active_bidders) })
    : t("lot.no_rank", { of: count(v?.active_bidders ?? 0) }));
  setText(fields.best, m(v?.best_price));
  setText(fields.own, m(v?.own_price));
  setText(fields.gap, m(v?.gap));
  setText(fields.ceiling, m(rules.starting_price));
  setText(fields.extensions, count(v?.extensions ?? 0));
  if (v?.close_at) setText(fields.closes, lot.extendedText && v.extensions ? lot.extendedText
    : t("lot.closes_at", { time: time(Date.parse(v.close_at)) }));
  // The step is measured from the own price ("own") or the best price ("best", when the
  // view shows it); without a base only the ceiling applies. The server stays the judge.
  const base = rules.rules.improve_on === "own" ? v?.own_price : v?.best_price;
  const b = bounds(rules, decimals, base ? toMinor(base, decimals) : null);
  // Without a maximum step the floor is one minor unit: saying "at least 0.01" helps nobody.
  // With improve_on "best" in a rank auction the base is hidden: the page cannot know more.
  const hiddenBase = rules.rules.improve_on === "best" && visibility === "rank" && v?.active_bidders;
  if (hiddenBase) setText(fields.bounds, t("bid.bounds_hidden", { high: m(rules.starting_price) }));
  else setText(fields.bounds, base && b.low > 1n ? t("bid.bounds", { high: m(fromMinor(b.high, decimals)), low: m(fromMinor(b.low, decimals)) })
    : t("bid.bounds_first", { high: m(fromMinor(b.high, decimals)) }));
  fields.amount.placeholder = number(fromMinor(b.high, decimals), decimals);
  setText(fields["amount-label"], t("bid.amount", { currency }));
  const open = status === "open" && conn.state === "live";
  fields.fieldset.disabled = !open || Boolean(lot.sending);
  if (lot.refocus && !fields.fieldset.disabled) {
    lot.refocus = false; // never steal the focus from where the person has moved it since
    if (document.activeElement === document.body || !document.activeElement) fields.amount.focus();
  }
  setText(fields.feedback, lot.feedback?.text ?? "");
  fields.feedback.dataset.kind = lot.feedback?.kind ?? "";
  fields.result.hidden = !lot.result;
  setText(fields.result, lot.result ? resultText(lot) : "");
  if (lot.result) fields.result.dataset.outcome = lot.result.outcome;
  if (status === "suspended") {
    setText(fields.feedback, t("lot.suspended_note", { reason: lot.reason || "—" }));
    fields.feedback.dataset.kind = "";
  }
  renderLadder(lot);
  const chartKey = `${current.lang}/${lot.bids.length}`; // redrawn only when it changes, not per view
  if (lot.chartKey !== chartKey) {
    lot.chartKey = chartKey;
    drawChart(fields.chart, lot.bids, t("chart.label", { n: count(lot.bids.length),
      last: lot.bids.length ? m(fromMinor(lot.bids[lot.bids.length - 1].minor, decimals)) : "—" }));
  }
  tickLot(lot, conn.serverNow());
}

function renderLadder(lot) {
  const body = lot.fields["ladder-body"];
  const ladder = lot.view?.ladder ?? [];
  while (body.rows.length > ladder.length) body.deleteRow(-1);
  ladder.forEach((line, i) => {
    const row = body.rows[i] ?? body.insertRow();
    while (row.cells.length < 3) row.insertCell();
    row.className = line.own ? "own" : "";
    setText(row.cells[0], count(line.rank));
    setText(row.cells[1], line.own ? t("ladder.you", { pseudonym: line.pseudonym }) : line.pseudonym);
    setText(row.cells[2], money(line.price, welcome.currency, welcome.decimals));
  });
}

function resultText(lot) {
  const r = lot.result;
  const m = (amount) => money(amount, welcome.currency, welcome.decimals);
  if (r.outcome === "won") return t("result.won", { lot: lot.rules.title, price: m(r.own_price) });
  if (r.outcome === "not_won") return t("result.not_won", { lot: lot.rules.title, rank: count(r.rank ?? 0), price: m(r.own_price) });
  return t("result.unsuccessful", { lot: lot.rules.title, reason: t(`reason.${r.unsuccessful_reason}`) });
}

function tick() {
  const now = conn.serverNow();
  for (const lot of lots.values()) tickLot(lot, now);
}

function tickLot(lot, now) {
  const { fields } = lot;
  const v = lot.view;
  const status = statusOf(lot);
  let left = null;
  let label = "";
  if (status === "open" && v) {
    left = Date.parse(v.close_at) - now;
    label = t("clock.closes_in");
  } else if (status === "scheduled" && welcome) {
    left = Date.parse(welcome.start) - now;
    label = t("clock.opens_in");
  } else {
    label = t(`clock.${status}`);
  }
  setText(fields["clock-label"], label);
  setText(fields.countdown, left === null ? "" : remaining(left));
  const final = status === "open" && left !== null && left < FINAL_MS;
  if (lot.card.classList.contains("final") !== final) lot.card.classList.toggle("final", final);
}

main();
