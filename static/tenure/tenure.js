/* Tenure's one script: fresh session tokens on in-app navigation and form posts, and the Data
 * page's progress bar. The pages are complete without it (server-rendered HTML and SVG). */
(function () {
  "use strict";
  function freshToken() {
    if (window.shopify && typeof window.shopify.idToken === "function") {
      return window.shopify.idToken().catch(function () { return null; });
    }
    return Promise.resolve(null);
  }
  function withToken(href, token) {
    var url = new URL(href, window.location.href);
    if (token && url.origin === window.location.origin) { url.searchParams.set("id_token", token); }
    return url.toString();
  }
  // Links carry the token the page was loaded with; swap in a fresh one so a page left open
  // for minutes still navigates without a detour through the bounce page.
  document.addEventListener("click", function (event) {
    var a = event.target.closest && event.target.closest("a[data-nav]");
    if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) { return; }
    if (!window.shopify) { return; }
    event.preventDefault();
    freshToken().then(function (token) {
      var href = withToken(a.getAttribute("href"), token);
      if (a.hasAttribute("download")) {
        var tmp = document.createElement("a");
        tmp.href = href; tmp.setAttribute("download", a.getAttribute("download") || "");
        document.body.appendChild(tmp); tmp.click(); tmp.remove();
      } else {
        window.location.assign(href);
      }
    });
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!window.shopify || form.dataset.tokenReady === "1") { return; }
    event.preventDefault();
    freshToken().then(function (token) {
      if ((form.method || "get").toLowerCase() === "get") {
        var input = form.querySelector('input[name="id_token"]');
        if (input && token) { input.value = token; }
      } else {
        form.action = withToken(form.getAttribute("action") || window.location.href, token);
      }
      form.dataset.tokenReady = "1";
      form.submit();
    });
  });

  // Data page: poll the status endpoint (App Bridge's fetch adds the Bearer token) while a backfill runs.
  var box = document.getElementById("sync-status");
  if (!box || box.dataset.running !== "1") { return; }
  var url = box.dataset.statusUrl;
  var bar = document.getElementById("backfill-progress");
  var text = document.getElementById("backfill-text");
  var phase = document.getElementById("backfill-phase");
  function poll() {
    window.fetch(url, { headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (res) { if (!res.ok) { throw new Error("status " + res.status); } return res.json(); })
      .then(function (data) {
        var b = data.backfill;
        if (!b) {
          bar.value = 100; text.textContent = "Import finished. Reload to see your reports.";
          if (window.shopify && window.shopify.toast) { window.shopify.toast.show("Order history imported"); }
          return;
        }
        var pct = b.percent == null ? 0 : Math.round(b.percent);
        bar.value = pct; bar.textContent = pct + "%";
        phase.textContent = b.phase || "";
        text.textContent = pct + "% · " + b.objects_seen + " of " + (b.object_count == null ? "?" : b.object_count) +
          " records" + (b.eta_s ? " · about " + Math.round(b.eta_s) + " s left" : "");
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1500);
})();
