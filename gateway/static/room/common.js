// What both pages share: the auction id from the URL, the token entry (a #token= fragment
// removed from the address bar at once, or the login form; kept in sessionStorage only),
// the language switch, announcements for screen readers, and the confirmation dialog.

import { LANGUAGES, chosenLanguage, t, time, useLanguage } from "./i18n.js";

/** The auction id of this page's URL (/room/{id} or /room/{id}/observe). */
export function auctionId() {
  return decodeURIComponent(location.pathname.split("/")[2] ?? "");
}

/** The room's WebSocket URL on this origin. */
export function roomUrl(id) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/v1/auctions/${encodeURIComponent(id)}`;
}

/**
 * Take a token from the #token= fragment, and remove the fragment from the address bar and
 * the history entry at once (before anything else can read or log it). Returns it or null.
 */
export function tokenFromFragment() {
  const match = /^#token=([A-Za-z0-9._~-]+)$/.exec(location.hash);
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  return match ? match[1] : null;
}

/** sessionStorage of this tab: gone when the tab closes, never sent anywhere by the browser. */
export const seat = {
  key: (id, what) => `room.${what}.${id}`,
  get(id, what) {
    return sessionStorage.getItem(this.key(id, what));
  },
  set(id, what, value) {
    sessionStorage.setItem(this.key(id, what), value);
  },
  clear(id, what) {
    sessionStorage.removeItem(this.key(id, what));
  },
};

/** Say `text` to screen readers (the polite live region, or the assertive one if `urgent`). */
export function announce(text, urgent = false) {
  const region = document.getElementById(urgent ? "alert" : "announce");
  region.textContent = "";
  // A fresh text node in a later task, so the same words twice are still announced.
  setTimeout(() => {
    region.textContent = text;
  }, 30);
}

/** Ask for confirmation in the page's <dialog id="confirm">; resolves true or false. */
export function confirmDialog(title, body) {
  const dialog = document.getElementById("confirm");
  dialog.querySelector("[data-role=title]").textContent = title;
  dialog.querySelector("[data-role=body]").textContent = body;
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
    dialog.querySelector("[value=no]").focus(); // the safe choice has the focus
  });
}

/** Wire the language <select id="lang"> and load the chosen language; `onChange` re-renders. */
export async function setUpLanguage(onChange) {
  const select = document.getElementById("lang");
  const lang = chosenLanguage();
  for (const code of Object.keys(LANGUAGES)) {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = { fr: "Français", ar: "العربية", en: "English" }[code];
    option.lang = code;
    select.append(option);
  }
  select.value = lang;
  await useLanguage(lang);
  select.addEventListener("change", async () => {
    await useLanguage(select.value, true);
    onChange();
  });
}

/** Show the token form until a token is given; resolves with it. */
export function askToken(formId) {
  const form = document.getElementById(formId);
  form.hidden = false;
  form.querySelector("input").focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const values = Object.fromEntries(new FormData(form));
      form.hidden = true;
      form.reset(); // the token leaves the DOM
      resolve(values);
    });
  });
}

/** Set an element's text by id (no HTML is ever built from strings: nothing to inject). */
export function setText(id, text) {
  const el = typeof id === "string" ? document.getElementById(id) : id;
  if (el && el.textContent !== text) el.textContent = text;
}

/** A new element with a class and text. */
export function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** The plain-language text of a close code (docs/protocol.md "Close codes"). */
export function closeText(code, reason) {
  const key = `close.${reason}`;
  const text = t(key);
  return text === key ? t("close.other", { code, reason: reason || "—" }) : text;
}

/** The room's `suspended` and `resumed` messages applied to a page's lots (both pages
 * alike): the lot's status, the announcement, and a render scheduled. */
export function suspensionHandlers(lots, schedule) {
  return {
    suspended(m) {
      const lot = lots.get(m.lot);
      if (!lot?.view) return;
      lot.view = { ...lot.view, status: "suspended" };
      lot.reason = m.reason;
      announce(t("announce.suspended", { lot: lot.rules.title }), true);
      schedule(m.lot);
    },
    resumed(m) {
      const lot = lots.get(m.lot);
      if (!lot?.view) return;
      lot.view = { ...lot.view, status: "open", close_at: m.close_at };
      announce(t("announce.resumed", { lot: lot.rules.title, time: time(Date.parse(m.close_at)) }));
      schedule(m.lot);
    },
  };
}
