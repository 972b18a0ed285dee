// excap station login: posts {user, password} to /api/login, then opens the station page.
"use strict";

const message = document.getElementById("login-message");

async function logIn(event) {
  event.preventDefault();
  const button = document.getElementById("login-button");
  button.disabled = true;
  message.textContent = "";
  try {
    const response = await fetch("/api/login", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({user: document.getElementById("login-user").value,
                            password: document.getElementById("login-password").value}),
    });
    if (response.ok) {
      window.location.assign("/");
      return;
    }
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    message.textContent = data.detail || `login failed: HTTP ${response.status}`;
    document.getElementById("login-password").value = "";
  } catch (e) {
    message.textContent = "station not reachable";
  } finally {
    button.disabled = false;
  }
}

document.getElementById("login-form").addEventListener("submit", logIn);
fetch("/api/whoami").then((r) => (r.ok ? r.json() : null)).then((who) => {
  if (who) window.location.assign("/");  // logged in already, or a loopback station needing no login
}).catch(() => null);
