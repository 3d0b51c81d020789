// Tasks finished and failed per minute over the last hour, as bars in an SVG drawn here:
// no chart library to vendor for sixty-one bars.

import { h } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 610;
const HEIGHT = 120;
const ROOM = 4; // above the highest bar

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

export function chart(minutes) {
  if (!minutes.length) return h("p", { class: "empty" }, "no finished tasks in the last hour");
  const top = Math.max(1, ...minutes.map((minute) => minute.finished));
  const step = WIDTH / minutes.length;
  const bars = minutes.flatMap((minute, index) => {
    const x = index * step;
    const done = (minute.finished / top) * (HEIGHT - ROOM);
    const failed = (minute.failed / top) * (HEIGHT - ROOM);
    const label = `${new Date(minute.at).toLocaleTimeString()}: ${minute.finished} finished, ${minute.failed} failed`;
    return [
      svg(
        "rect",
        { x, y: HEIGHT - done, width: Math.max(1, step - 1), height: done, class: "bar-done" },
        svg("title", {}, label),
      ),
      svg(
        "rect",
        { x, y: HEIGHT - failed, width: Math.max(1, step - 1), height: failed, class: "bar-failed" },
        svg("title", {}, label),
      ),
    ];
  });
  const picture = svg(
    "svg",
    {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      preserveAspectRatio: "none", // the bars stretch to the card's width
      role: "img",
      "aria-label": "tasks finished and failed per minute, the last hour",
      "data-testid": "chart",
    },
    ...bars,
  );
  const legend = h(
    "p",
    { class: "legend" },
    h("span", { class: "key done" }, "finished"),
    h("span", { class: "key failed" }, "failed"),
    h("span", {}, `top of the scale: ${top} a minute; the newest minute on the right`),
  );
  return [picture, legend];
}
