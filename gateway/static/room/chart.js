// The bidder's own bids over time, drawn as SVG by the page (no library): a step line from
// bid to bid, a dot per bid. Prices are compared as BigInt minor units; only the pixel
// position is a float.

const NS = "http://www.w3.org/2000/svg";
const W = 320;
const H = 120;
const PAD = 8;

function node(tag, attrs) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  return n;
}

/** Draw `points` ([{t: ms, minor: BigInt}], oldest first) into `svg`; `label` is its text alternative. */
export function drawChart(svg, points, label) {
  svg.replaceChildren();
  svg.setAttribute("aria-label", label);
  const title = node("title", {});
  title.textContent = label;
  svg.append(title, node("rect", { x: 0, y: 0, width: W, height: H, class: "chart-bg" }));
  if (!points.length) return;
  const t0 = points[0].t;
  const t1 = Math.max(points[points.length - 1].t, t0 + 1000);
  let lo = points[0].minor;
  let hi = points[0].minor;
  for (const p of points) {
    if (p.minor < lo) lo = p.minor;
    if (p.minor > hi) hi = p.minor;
  }
  const span = hi - lo || 1n;
  // The highest price at the top: the line steps down as the bidder improves its offer.
  const x = (t) => PAD + ((t - t0) / (t1 - t0)) * (W - 2 * PAD);
  const y = (m) => PAD + (Number(((hi - m) * 1000n) / span) / 1000) * (H - 2 * PAD);
  let d = "";
  points.forEach((p, i) => {
    d += i === 0 ? `M${x(p.t).toFixed(1)},${y(p.minor).toFixed(1)}` : `H${x(p.t).toFixed(1)}V${y(p.minor).toFixed(1)}`;
  });
  svg.append(node("path", { d, class: "chart-line", fill: "none" }));
  for (const p of points) svg.append(node("circle", { cx: x(p.t).toFixed(1), cy: y(p.minor).toFixed(1), r: 3, class: "chart-dot" }));
}
