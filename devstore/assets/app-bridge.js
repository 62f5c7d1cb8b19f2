/*
 * devstore's stand-in for Shopify App Bridge (https://cdn.shopify.com/shopifycloud/app-bridge.js),
 * with the part of its surface Tenure uses, working offline:
 *
 * - window.shopify.idToken(): a fresh session token. Inside the admin frame it asks the parent
 *   admin page over postMessage (as App Bridge does); otherwise, or if the parent does not answer,
 *   it fetches <devstore>/_devstore/id_token?shop= with CORS. Tokens are cached until 10 s
 *   before they expire.
 * - window.fetch: same-origin requests get "Authorization: Bearer <id_token>"; a 401 carrying
 *   X-Shopify-Retry-Invalid-Session-Request: 1 is retried once with a new token.
 * - the bounce page: a page loaded with ?shopify-reload=<path> is reloaded at that path with a
 *   fresh id_token (https://shopify.dev/docs/apps/build/authentication-authorization/session-tokens).
 * - shopify.config, shopify.environment, shopify.toast.show(), shopify.loading(); <ui-nav-menu>
 *   links and <ui-title-bar title> are shown by the devstore admin page.
 * - loaded outside the admin (top window, not a bounce), the app is reopened inside the admin.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var devstore = new URL(script ? script.src : "/", window.location.href).origin;
  var params = new URLSearchParams(window.location.search);
  var meta = document.querySelector('meta[name="shopify-api-key"]');
  var apiKey = (script && script.getAttribute("data-api-key")) || (meta && meta.content) || "";
  var embedded = window.top !== window;

  function decodeClaims(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) { part += "="; }
      return JSON.parse(atob(part));
    } catch (e) {
      return {};
    }
  }

  var initial = params.get("id_token");
  var shop = params.get("shop") || (initial && (decodeClaims(initial).dest || "").replace("https://", "")) || "";
  try {
    if (shop) { window.sessionStorage.setItem("devstore-shop", shop); }
    else { shop = window.sessionStorage.getItem("devstore-shop") || ""; }
  } catch (e) { /* storage may be blocked in a third-party frame */ }

  var cached = initial ? { token: initial, exp: decodeClaims(initial).exp || 0 } : null;
  var pending = null;
  var waiting = {};
  var counter = 0;

  window.addEventListener("message", function (event) {
    if (event.origin !== devstore || !event.data || event.data.type !== "devstore:id_token") { return; }
    var resolve = waiting[event.data.id];
    if (resolve) { delete waiting[event.data.id]; resolve(event.data.token || null); }
  });

  function fromParent() {
    if (!embedded) { return Promise.resolve(null); }
    return new Promise(function (resolve) {
      var id = "t" + (++counter);
      var timer = setTimeout(function () { if (waiting[id]) { delete waiting[id]; resolve(null); } }, 3000);
      waiting[id] = function (token) { clearTimeout(timer); resolve(token); };
      window.parent.postMessage({ type: "devstore:id_token:request", id: id, shop: shop }, devstore);
    });
  }

  function fromDevstore() {
    if (!shop) { return Promise.reject(new Error("App Bridge (devstore): no shop to ask a session token for")); }
    return nativeFetch(devstore + "/_devstore/id_token?shop=" + encodeURIComponent(shop),
                 { mode: "cors", credentials: "omit", cache: "no-store" })
      .then(function (res) {
        if (!res.ok) { throw new Error("devstore refused a session token: HTTP " + res.status); }
        return res.json();
      })
      .then(function (data) { return data.id_token; });
  }

  var nativeFetch = window.fetch.bind(window);

  function idToken() {
    var now = Date.now() / 1000;
    if (cached && cached.exp - 10 > now) { return Promise.resolve(cached.token); }
    if (pending) { return pending; }
    pending = fromParent()
      .then(function (token) { return token || fromDevstore(); })
      .then(function (token) {
        cached = { token: token, exp: decodeClaims(token).exp || 0 };
        pending = null;
        return token;
      }, function (err) {
        pending = null;
        throw err;
      });
    return pending;
  }

  function sameOrigin(input) {
    var raw = typeof input === "string" ? input : (input && input.url) || String(input);
    try { return new URL(raw, window.location.href).origin === window.location.origin; } catch (e) { return false; }
  }

  window.fetch = function (input, init) {
    if (!sameOrigin(input)) { return nativeFetch(input, init); }
    return idToken().then(function (token) {
      var target = typeof input === "string" || input instanceof URL ? new URL(input, window.location.href).href : input;
      var request = new Request(target, init);
      if (!request.headers.has("Authorization")) { request.headers.set("Authorization", "Bearer " + token); }
      var spare = request.clone();
      return nativeFetch(request).then(function (res) {
        if (res.status === 401 && res.headers.get("X-Shopify-Retry-Invalid-Session-Request") === "1") {
          cached = null;
          return idToken().then(function (fresh) {
            spare.headers.set("Authorization", "Bearer " + fresh);
            return nativeFetch(spare);
          });
        }
        return res;
      });
    });
  };

  var toastBox = null;
  var shopify = {
    config: { apiKey: apiKey, shop: shop, host: params.get("host") || "", locale: params.get("locale") || "en" },
    environment: { embedded: embedded, mobile: false, pos: false },
    origin: devstore,
    idToken: idToken,
    toast: {
      show: function (message, options) {
        if (!document.body) { return ""; }
        if (!toastBox) {
          toastBox = document.createElement("div");
          toastBox.setAttribute("role", "status");
          toastBox.style.cssText = "position:fixed;bottom:24px;left:50%;transform:translateX(-50%);" +
            "background:#303030;color:#fff;padding:10px 16px;border-radius:8px;font:14px sans-serif;z-index:9999";
          document.body.appendChild(toastBox);
        }
        toastBox.textContent = message;
        toastBox.style.background = options && options.isError ? "#8e1f0b" : "#303030";
        toastBox.hidden = false;
        clearTimeout(toastBox._timer);
        toastBox._timer = setTimeout(function () { toastBox.hidden = true; }, (options && options.duration) || 5000);
        return "toast";
      },
      hide: function () { if (toastBox) { toastBox.hidden = true; } }
    },
    loading: function (on) {
      if (embedded) { window.parent.postMessage({ type: "devstore:loading", on: on !== false }, devstore); }
    }
  };
  window.shopify = shopify;

  var style = document.createElement("style");
  style.textContent = "ui-nav-menu, ui-title-bar, ui-save-bar { display: none !important; }";
  (document.head || document.documentElement).appendChild(style);

  // The bounce page: reload the page that needed a token, with one.
  var reload = params.get("shopify-reload");
  if (reload) {
    idToken().then(function (token) {
      var url = new URL(reload, window.location.href);
      if (url.origin !== window.location.origin) { return; }
      url.searchParams.set("id_token", token);
      window.location.replace(url.toString());
    });
    return;
  }

  // Outside the admin, App Bridge sends the merchant back into it.
  if (!embedded && shop && apiKey && !(script && script.hasAttribute("data-devstore-no-redirect"))) {
    var handle = shop.replace(".myshopify.com", "");
    var rest = window.location.pathname === "/" ? "" : window.location.pathname;
    window.location.replace(devstore + "/store/" + handle + "/apps/" + encodeURIComponent(apiKey) + rest);
    return;
  }

  function announce() {
    if (!embedded) { return; }
    var links = [];
    document.querySelectorAll("ui-nav-menu a").forEach(function (a) {
      if (a.getAttribute("rel") !== "home") { links.push({ href: a.getAttribute("href"), label: a.textContent.trim() }); }
    });
    var bar = document.querySelector("ui-title-bar");
    window.parent.postMessage({ type: "devstore:frame", links: links, title: bar ? bar.getAttribute("title") : document.title,
                                path: window.location.pathname }, devstore);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", announce); } else { announce(); }
})();
