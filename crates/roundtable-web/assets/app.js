// Roundtable's page script: live updates, honest saving, copy and scan.
// Pages work without it; it only makes them nicer.
(() => {
  "use strict";

  // --- Talking to its own node only. ----------------------------------
  // The page carries the id of the node's run that served it; the live
  // stream says its run's id first. Once the stream was lost, nothing is
  // sent until the stream says this page's id again: a tab whose node
  // restarted (or whose port someone else took meanwhile) stays quiet.
  const run = document.querySelector('meta[name="rt-run"]')?.content || "";
  let trusted = true;
  const STALE = "This page is not in touch with your node, so nothing was sent. " +
    "If Roundtable was restarted, run `roundtable web --open` in a terminal to open your circle again.";
  function tellStale(form) {
    let p = form.querySelector(".stale");
    if (!p) {
      p = document.createElement("p");
      p.className = "problem stale";
      p.setAttribute("role", "alert");
      form.prepend(p);
    }
    p.textContent = STALE;
  }

  // --- Saving: a form says "Saving…" until the node has answered. -------
  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (!trusted) {
      ev.preventDefault();
      tellStale(form);
      return;
    }
    const button = ev.submitter || form.querySelector("button[type=submit]");
    if (button) {
      // Disable after the browser has taken the submit, so it still counts.
      setTimeout(() => {
        button.dataset.label = button.textContent;
        button.textContent = "Saving…";
        button.disabled = true;
      }, 0);
    }
  });
  // Coming back with the browser's back button: buttons work again.
  window.addEventListener("pageshow", () => {
    for (const b of document.querySelectorAll("button[data-label]")) {
      b.textContent = b.dataset.label;
      b.disabled = false;
    }
  });

  // --- Copy a ticket. ---------------------------------------------------
  document.addEventListener("click", async (ev) => {
    const button = ev.target.closest("[data-copy]");
    if (!button) return;
    const field = document.getElementById(button.dataset.copy);
    if (!field) return;
    field.select();
    try {
      await navigator.clipboard.writeText(field.value);
    } catch {
      document.execCommand("copy");
    }
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 2000);
  });

  // --- Scan a ticket's QR code, where the browser can. ------------------
  for (const button of document.querySelectorAll("[data-scan]")) {
    if (!("BarcodeDetector" in window) || !navigator.mediaDevices) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.scan);
      const video = button.parentElement.querySelector("video.scanner");
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
      } catch {
        button.textContent = "No camera available: paste the ticket instead";
        return;
      }
      video.hidden = false;
      video.srcObject = stream;
      await video.play();
      const detector = new BarcodeDetector({ formats: ["qr_code"] });
      const stop = () => { stream.getTracks().forEach((t) => t.stop()); video.hidden = true; };
      const look = async () => {
        try {
          const codes = await detector.detect(video);
          if (codes.length > 0) {
            field.value = codes[0].rawValue;
            stop();
            field.focus();
            return;
          }
        } catch { /* keep looking */ }
        if (!video.hidden) requestAnimationFrame(look);
      };
      look();
    });
  }

  // --- Live: swap what changed, never what someone is typing. ----------
  const circle = document.body.dataset.circle;
  const net = document.getElementById("net");
  let pending = null;
  async function refresh() {
    pending = null;
    if (!trusted) return;
    let html;
    try {
      const res = await fetch(location.href, { headers: { "X-Live": "1" }, credentials: "same-origin" });
      if (!res.ok) return;
      html = await res.text();
    } catch {
      return;
    }
    const fresh = new DOMParser().parseFromString(html, "text/html");
    for (const part of document.querySelectorAll("[data-live][id]")) {
      const next = fresh.getElementById(part.id);
      if (!next || part.contains(document.activeElement)) continue;
      if (part.innerHTML !== next.innerHTML) part.innerHTML = next.innerHTML;
    }
  }
  function later() {
    if (pending === null) pending = setTimeout(refresh, 150);
  }
  if ("EventSource" in window && net && run) {
    const events = new EventSource("/events");
    events.addEventListener("hello", (ev) => {
      if (ev.data === run) {
        trusted = true;
        for (const p of document.querySelectorAll(".stale")) p.remove();
        if (net.dataset.lost) { delete net.dataset.lost; later(); }
        return;
      }
      // Another node, or not a node: this page is done.
      trusted = false;
      events.close();
      net.textContent = "Roundtable was restarted, so this page can't be used any more. Run `roundtable web --open` in a terminal to open your circle again.";
      net.className = "net offline";
    });
    events.addEventListener("changed", (ev) => {
      if (!trusted) return;
      if (!circle || ev.data === circle || ev.data === "*") later();
      else if (!circle) later();
    });
    events.addEventListener("net", (ev) => {
      if (!trusted) return;
      try {
        const s = JSON.parse(ev.data);
        net.textContent = s.words;
        net.className = "net " + (s.online ? "online" : "offline");
      } catch { /* ignore */ }
      if (!circle) later();
    });
    events.addEventListener("error", () => {
      trusted = false;
      net.dataset.lost = "1";
      net.textContent = "Lost touch with your node. Is `roundtable up` still running? This page reconnects by itself; if Roundtable was restarted, run `roundtable web --open` to open your circle again.";
      net.className = "net offline";
    });
  }
})();
