// Runs devstore's App Bridge stand-in (devstore/assets/app-bridge.js) in Node with a minimal DOM,
// against a live devstore, and prints what it did as JSON. Used by test_platform_admin.py.
//   node app_bridge_harness.js <devstore base url> <scenario> <app url (path+query)> [api key]
"use strict";
const fs = require("fs");
const path = require("path");

const [devstore, scenario, appUrl, apiKey] = process.argv.slice(2);
const source = fs.readFileSync(path.join(__dirname, "..", "..", "devstore", "assets", "app-bridge.js"), "utf8");
const appOrigin = "http://app.test";
const out = { requests: [], replaced: null, posted: [] };
const listeners = {};
const storage = {};
const embedded = scenario !== "top" && scenario !== "standalone";

const location = new URL(appUrl, appOrigin);
location.replace = (url) => { out.replaced = String(url); };

// The app's own server: answers same-origin requests; the first /api/retry gets a 401 with the retry header.
let retried = false;
async function appFetch(input, init) {
  const request = input instanceof Request ? input : new Request(new URL(input, appOrigin), init);
  out.requests.push({ url: request.url, authorization: request.headers.get("Authorization") });
  if (new URL(request.url).origin !== appOrigin) { return fetch(request); }  // devstore: the real network
  if (new URL(request.url).pathname === "/api/retry" && !retried) {
    retried = true;
    return new Response("Unauthorized", { status: 401, headers: { "X-Shopify-Retry-Invalid-Session-Request": "1" } });
  }
  return new Response(JSON.stringify({ ok: true }), { status: 200 });
}

const parent = {
  // The devstore admin page answers token requests over postMessage; emulate it with a real fetch.
  postMessage(message, targetOrigin) {
    out.posted.push({ type: message.type, targetOrigin });
    if (message.type !== "devstore:id_token:request") { return; }
    fetch(`${devstore}/_devstore/id_token?shop=${encodeURIComponent(message.shop)}`)
      .then((res) => res.json())
      .then((data) => {
        (listeners.message || []).forEach((fn) => fn({ origin: devstore, data: { type: "devstore:id_token", id: message.id, token: data.id_token } }));
      });
  },
};

const element = () => ({ style: {}, setAttribute() {}, appendChild() {}, textContent: "" });
const script = {
  src: `${devstore}/cdn/app-bridge.js`,
  getAttribute: (name) => (name === "data-api-key" ? apiKey || null : null),
  hasAttribute: (name) => scenario === "standalone" && name === "data-devstore-no-redirect",
};
global.window = {
  location,
  sessionStorage: { getItem: (k) => storage[k] || null, setItem: (k, v) => { storage[k] = v; } },
  addEventListener: (type, fn) => { (listeners[type] = listeners[type] || []).push(fn); },
  fetch: appFetch,
};
window.top = embedded ? {} : window;
window.parent = embedded ? parent : window;
global.document = {
  currentScript: script,
  readyState: "complete",
  querySelector: () => null,
  querySelectorAll: () => [],
  createElement: element,
  head: element(),
  documentElement: element(),
  body: element(),
  addEventListener() {},
};

new Function(source)();

(async () => {
  try {
    if (scenario === "bounce" || scenario === "top") {
      await new Promise((resolve) => setTimeout(resolve, 300));
      console.log(JSON.stringify(out));
      process.exit(0);
    }
    out.token = await window.shopify.idToken();
    out.cached = (await window.shopify.idToken()) === out.token;
    out.config = window.shopify.config;
    await window.fetch("/api/orders");
    await window.fetch(`${appOrigin}/api/retry`, { method: "POST", body: "{}" });
    await window.fetch(`${devstore}/_devstore/health`);
    console.log(JSON.stringify(out));
  } catch (err) {
    console.log(JSON.stringify({ error: String(err && err.stack || err) }));
  }
  process.exit(0);
})();
