// Keyboard shortcuts: a key clicks (or focuses, with data-focus) the element whose data-key is that key.
// Keys typed into a text field stay there, except Enter, which submits that field's form as usual.
"use strict";
let sent = false;

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return;
  const el = document.querySelector(`[data-key="${CSS.escape(e.key)}"]`);
  if (!el) return;
  e.preventDefault();
  if (el.hasAttribute("data-focus")) el.focus();
  else el.click();
});

// Ranking: "Answer n next" appends n to the order field once; "clear" empties it.
for (const b of document.querySelectorAll("[data-append]")) {
  b.addEventListener("click", () => {
    const field = document.getElementById("order");
    const order = field.value.split(/[\s,]+/).filter(Boolean);
    if (!order.includes(b.dataset.append)) order.push(b.dataset.append);
    field.value = order.join(" ");
  });
}
for (const b of document.querySelectorAll("[data-clear]")) {
  b.addEventListener("click", () => { document.getElementById(b.dataset.clear).value = ""; });
}

// One answer per page view: a second key press while the first answer is on its way does nothing
// (the server would store it once anyway, as an edit).
for (const f of document.querySelectorAll("form")) {
  f.addEventListener("submit", (e) => {
    if (sent) e.preventDefault();
    sent = true;
  });
}
