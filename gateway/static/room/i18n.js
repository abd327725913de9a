// Languages: one message catalogue per language (i18n/<lang>.json), French by default, the
// choice remembered (localStorage holds only the language, never a credential). Numbers and
// money through Intl.NumberFormat, times in the viewer's time zone with its UTC offset.

export const LANGUAGES = { fr: { locale: "fr-FR", dir: "ltr" }, ar: { locale: "ar-MA", dir: "rtl" }, en: { locale: "en-GB", dir: "ltr" } };
const DEFAULT = "fr";
const KEY = "room.lang";

let catalogue = {};
export const current = { lang: DEFAULT, locale: LANGUAGES[DEFAULT].locale, timeZone: undefined };

/** The language to use: ?lang= if valid, else the remembered one, else French. */
export function chosenLanguage() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked in LANGUAGES) return asked;
  const kept = localStorage.getItem(KEY);
  return kept in LANGUAGES ? kept : DEFAULT;
}

/** Load `lang`'s catalogue, set <html lang dir>, translate the static markup. */
export async function useLanguage(lang, remember = false) {
  const answer = await fetch(`/room/_static/i18n/${lang}.json`);
  catalogue = await answer.json();
  current.lang = lang;
  current.locale = LANGUAGES[lang].locale;
  const tz = new URLSearchParams(location.search).get("tz");
  current.timeZone = tz && isTimeZone(tz) ? tz : undefined; // undefined: the device's zone
  if (remember) localStorage.setItem(KEY, lang);
  document.documentElement.lang = lang;
  document.documentElement.dir = LANGUAGES[lang].dir;
  translate(document);
}

function isTimeZone(tz) {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The message `key` with {name} placeholders filled from `params`; the key itself if missing. */
export function t(key, params = {}) {
  const text = catalogue[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

/** Translate `data-i18n` (text) and `data-i18n-attr` ("attr:key;attr:key") under `root`. */
export function translate(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      el.setAttribute(attr, t(key));
    }
  }
}

const moneyFormats = new Map();

/** A decimal string as money in the current locale ("1 234,50 MAD"); exact (string input). */
export function money(amount, currency, decimals) {
  if (amount === null || amount === undefined) return "—";
  const key = `${current.locale}/${currency}/${decimals}`;
  let format = moneyFormats.get(key);
  if (!format) {
    format = new Intl.NumberFormat(current.locale, { style: "currency", currency, currencyDisplay: "code",
      minimumFractionDigits: decimals, maximumFractionDigits: decimals });
    moneyFormats.set(key, format);
  }
  return format.format(amount); // a string is formatted exactly (Intl.NumberFormat v3), no float
}

/** A decimal string as a plain number in the current locale ("1 234,50"), for the input field. */
export function number(amount, decimals) {
  return new Intl.NumberFormat(current.locale, { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
    .format(amount);
}

/** An integer in the current locale. */
export function count(n) {
  return new Intl.NumberFormat(current.locale).format(n);
}

/** An instant (ms since the epoch) as a time of day with the UTC offset: "10:32:05 UTC+01:00". */
export function time(ms, withSeconds = true) {
  const format = new Intl.DateTimeFormat(current.locale, { hour: "2-digit", minute: "2-digit",
    second: withSeconds ? "2-digit" : undefined, hourCycle: "h23", timeZone: current.timeZone, timeZoneName: "longOffset" });
  return format.format(new Date(ms));
}

/** A remaining duration in ms as "1:02:03", "02:03", or "9,4 s" in the final minute. */
export function remaining(ms) {
  if (ms <= 0) return count(0);
  if (ms < 60000) {
    return t("seconds_short", { n: new Intl.NumberFormat(current.locale, { minimumFractionDigits: 1,
      maximumFractionDigits: 1, roundingMode: "trunc" }).format(Math.floor(ms / 100) / 10) });
  }
  const s = Math.floor(ms / 1000);
  const two = (n) => new Intl.NumberFormat(current.locale, { minimumIntegerDigits: 2 }).format(n);
  const h = Math.floor(s / 3600);
  return (h ? `${count(h)}:${two(Math.floor(s / 60) % 60)}` : two(Math.floor(s / 60))) + `:${two(s % 60)}`;
}
