"use strict";

// The page talks only to its own origin, the backend-for-frontend. It never sees a token: they
// are in HttpOnly cookies. Like Angular's HttpClient, it repeats the XSRF-TOKEN cookie in the
// X-XSRF-TOKEN header of unsafe requests, which the BFF requires.
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function xsrfToken() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("XSRF-TOKEN="));
  return cookie ? decodeURIComponent(cookie.slice("XSRF-TOKEN=".length)) : null;
}

async function call(method, path, { xsrf = true } = {}) {
  const headers = { Accept: "application/json" };
  const token = xsrfToken();
  if (UNSAFE.has(method) && xsrf && token) {
    headers["X-XSRF-TOKEN"] = token;
  }
  const response = await fetch(path, { method, headers, credentials: "same-origin" });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.status === 401) {
    showSignedOut(); // the session ended (a refresh idp refused): sign in again
  }
  return { status: response.status, data };
}

function show(label, status, data) {
  const result = document.getElementById("result");
  result.dataset.label = label;
  result.dataset.status = String(status);
  document.getElementById("result-label").textContent = `${label} → ${status}`;
  document.getElementById("result-body").textContent = JSON.stringify(data, null, 2);
}

function showSignedOut() {
  document.getElementById("signed-in").hidden = true;
  document.getElementById("signed-out").hidden = false;
  document.body.dataset.state = "signed-out";
}

async function loadUser() {
  const me = await call("GET", "/me");
  if (me.status !== 200) {
    showSignedOut();
    return;
  }
  document.getElementById("user-name").textContent = me.data.name || me.data.sub;
  document.getElementById("user-email").textContent = me.data.email || "no email";
  document.getElementById("user-roles").textContent = (me.data.roles || []).join(", ") || "none";
  document.getElementById("signed-out").hidden = true;
  document.getElementById("signed-in").hidden = false;
  document.body.dataset.state = "signed-in";
}

async function get(path) {
  const result = await call("GET", path);
  show(`GET ${path}`, result.status, result.data);
}

async function burst() {
  // Twenty calls at once, as a dashboard does on load: if the access token has expired, the
  // BFF refreshes it once for all of them.
  const results = await Promise.all(
    Array.from({ length: 20 }, () => call("GET", "/api/greeting")),
  );
  const counts = {};
  for (const { status } of results) {
    counts[status] = (counts[status] || 0) + 1;
  }
  const statuses = Object.keys(counts).sort().join(",");
  show("20 × GET /api/greeting", statuses, counts);
}

async function forgedPost() {
  // What a cross-site form or script could send: no X-XSRF-TOKEN header. The BFF answers 403.
  const result = await call("POST", "/api/greeting", { xsrf: false });
  show("POST /api/greeting without X-XSRF-TOKEN", result.status, result.data);
}

async function signOut() {
  const result = await call("POST", "/auth/logout");
  if (result.status === 200 && result.data && result.data.logout_url) {
    window.location.assign(result.data.logout_url); // idp ends its session, then comes back
  } else {
    show("POST /auth/logout", result.status, result.data);
  }
}

document.getElementById("greeting").addEventListener("click", () => get("/api/greeting"));
document.getElementById("report").addEventListener("click", () => get("/api/admin/report"));
document.getElementById("burst").addEventListener("click", burst);
document.getElementById("forged-post").addEventListener("click", forgedPost);
document.getElementById("sign-out").addEventListener("click", signOut);
loadUser();
