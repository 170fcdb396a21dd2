// Sends the admin key once; the router answers with a cookie derived from it.
"use strict";
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.hidden = true;
  const key = document.getElementById("login-key").value;
  const reply = await fetch("/dashboard/api/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ key }),
  });
  if (reply.ok) {
    location.href = "/dashboard";
    return;
  }
  const body = await reply.json().catch(() => ({}));
  error.textContent = (body.error && body.error.message) || "sign-in failed";
  error.hidden = false;
});
