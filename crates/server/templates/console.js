// Keeps the escalation queue current without a build step: ages and
// countdowns tick every second, and a page marked data-live reloads every
// 20 s unless someone is typing (never a form or a page answering a POST).
// A button marked data-print prints the page (CSP allows no inline script).
(function () {
  document.querySelectorAll("[data-print]").forEach(function (b) {
    b.addEventListener("click", function () { window.print(); });
  });
  function fmt(s) {
    var neg = s < 0; s = Math.abs(Math.floor(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var t = (h ? h + "時間" : "") + m + "分" + (h ? "" : sec + "秒");
    return neg ? "超過 " + t : t;
  }
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll(".age").forEach(function (e) { e.textContent = fmt(now - Number(e.dataset.since)); });
    document.querySelectorAll(".countdown").forEach(function (e) { e.textContent = fmt(Number(e.dataset.until) - now); });
  }
  setInterval(tick, 1000);
  if (!document.querySelector("[data-live]")) { return; }
  setInterval(function () {
    var a = document.activeElement;
    if (!a || (a.tagName !== "INPUT" && a.tagName !== "BUTTON")) { location.reload(); }
  }, 20000);
})();
