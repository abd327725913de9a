// Money as the room sends it: decimal strings, held here as BigInt minor units. Never a float.
// parseTyped() turns what a person typed in their locale into the room's canonical string;
// bounds() is the core's step rule (docs/core.md), so the page can say what the server will accept.

const ARABIC_DIGITS = /[\u0660-\u0669\u06F0-\u06F9]/g;
const SPACES = /[\s\u00A0\u202F\u2009\u2007']/g; // group separators people type or paste

/** The separators of `locale`: {group, decimal}. */
export function separators(locale) {
  const parts = new Intl.NumberFormat(locale).formatToParts(12345.6);
  const find = (type) => parts.find((p) => p.type === type)?.value ?? "";
  return { group: find("group"), decimal: find("decimal") };
}

/** A decimal string with at most `decimals` decimals as BigInt minor units; null if it is not one. */
export function toMinor(text, decimals) {
  const m = /^(\d{1,18})(?:\.(\d*))?$/.exec(text);
  if (!m || (m[2] ?? "").length > decimals) return null;
  return BigInt(m[1] + (m[2] ?? "").padEnd(decimals, "0"));
}

/** BigInt minor units as the canonical decimal string ("1234.50"). */
export function fromMinor(minor, decimals) {
  const negative = minor < 0n;
  const digits = (negative ? -minor : minor).toString().padStart(decimals + 1, "0");
  const whole = digits.slice(0, digits.length - decimals);
  const frac = decimals ? "." + digits.slice(digits.length - decimals) : "";
  return (negative ? "-" : "") + whole + frac;
}

/**
 * What a person typed, in `locale`'s format (or plain "1234.50"), as the room's canonical
 * decimal string with exactly `decimals` decimals. Throws an Error whose `code` is
 * `amount_empty`, `amount_format` or `amount_decimals`: the page shows it, nothing is sent.
 */
export function parseTyped(typed, locale, decimals) {
  const { group, decimal } = separators(locale);
  const text = String(typed).trim()
    .replace(ARABIC_DIGITS, (d) => String(d.charCodeAt(0) & 0xf))
    .replace(/\u066B/g, decimal).replace(/\u066C/g, group);
  if (!text) throw coded("amount_empty");
  // The locale's decimal mark; where the locale groups with spaces (fr), "." is one too,
  // since people type 1234.50 everywhere. A locale's own group mark never is.
  const spaced = group.replace(SPACES, "") === "";
  const marks = spaced && decimal !== "." ? [decimal, "."] : [decimal];
  const at = Math.max(...marks.map((mark) => text.lastIndexOf(mark)));
  const intPart = at >= 0 ? text.slice(0, at) : text;
  const fracPart = at >= 0 ? text.slice(at + 1) : "";
  const groups = intPart.split(spaced ? SPACES : new RegExp(`[${escape(group)}\\s\u00A0\u202F']`));
  // Grouping must be real grouping (1 234 567): "12 34" is a typo, not 1234.
  if (groups.length > 1 && (!/^\d{1,3}$/.test(groups[0]) || groups.slice(1).some((g) => !/^\d{3}$/.test(g)))) {
    throw coded("amount_format");
  }
  const whole = groups.join("");
  if (!/^\d{1,18}$/.test(whole) || !/^\d*$/.test(fracPart)) throw coded("amount_format");
  if (fracPart.length > decimals) throw coded("amount_decimals", { decimals });
  return fromMinor(toMinor(fracPart ? `${whole}.${fracPart}` : whole, decimals), decimals);
}

function escape(text) {
  return text.replace(/[\\\]^-]/g, "\\$&");
}

function coded(code, params = {}) {
  const error = new Error(code);
  error.code = code;
  error.params = params;
  return error;
}

/** A percentage string ("0.5") as [numerator, denominator] BigInts. */
export function parsePercent(text) {
  const [whole, frac = ""] = text.split(".");
  return [BigInt(whole + frac), 10n ** BigInt(frac.length)];
}

/**
 * The amounts the core accepts next on a lot, as {low, high} BigInt minor units: the
 * bidder's next bid must be at least `low` and at most `high` (docs/core.md, "steps").
 * `base` is the price the step is measured from (own price with improve_on "own", the best
 * price with "best"), or null when there is none (then only the ceiling applies).
 */
export function bounds(lot, decimals, base) {
  const starting = toMinor(lot.starting_price, decimals);
  if (base === null || base === undefined) return { low: 1n, high: starting };
  const r = lot.rules;
  let lowStep = toMinor(r.min_step, decimals);
  if (r.min_step_percent !== null) {
    const [n, d] = parsePercent(r.min_step_percent);
    const step = (base * n + 100n * d - 1n) / (100n * d); // rounded up, as the core does
    if (step > lowStep) lowStep = step;
  }
  if (lowStep < 1n) lowStep = 1n;
  let highStep = base;
  if (r.max_step !== null) {
    const step = toMinor(r.max_step, decimals);
    if (step < highStep) highStep = step;
  }
  if (r.max_step_percent !== null) {
    const [n, d] = parsePercent(r.max_step_percent);
    const step = (base * n) / (100n * d); // rounded down
    if (step < highStep) highStep = step;
  }
  const high = base - lowStep < starting ? base - lowStep : starting;
  const low = base - highStep > 1n ? base - highStep : 1n;
  return { low, high };
}
