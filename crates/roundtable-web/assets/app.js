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
  // --- Nothing typed is lost. -----------------------------------------
  // While the node cannot be reached, a form is not sent (the browser
  // would only show "can't be reached" and drop the words): what was
  // typed is kept in this browser's own storage (never sent anywhere
  // else), the form says so, and it is sent as soon as the node answers
  // again. When the node restarted instead, the app is at the same
  // address (its host name is kept in the home), so the next page opened
  // here finds what was kept: its form is filled in again, and every
  // other page points to it.
  const KEEP = "rt-kept:";
  const keyOf = (form) => KEEP + (form.getAttribute("action") || location.pathname);
  function fieldsOf(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.name === "_form" || el.disabled) continue;
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) continue;
      if (el.type === "submit" || el.type === "button") continue;
      out[el.name] = el.value;
    }
    return out;
  }
  function typed(fields) {
    return Object.entries(fields).some(([k, v]) => v.trim() !== "" && k !== "confirm");
  }
  function keep(form) {
    try {
      localStorage.setItem(keyOf(form), JSON.stringify({ at: Date.now(), fields: fieldsOf(form) }));
      return true;
    } catch {
      return false;
    }
  }
  function forget(form) {
    try { localStorage.removeItem(keyOf(form)); } catch { /* nothing kept */ }
  }
  function note(form, cls, words) {
    let p = form.querySelector("." + cls);
    if (!p) {
      p = document.createElement("p");
      p.className = "problem " + cls;
      p.setAttribute("role", "alert");
      form.prepend(p);
    }
    p.textContent = words;
  }
  function restore() {
    for (const form of document.querySelectorAll("form[method=post]")) {
      let kept;
      try { kept = JSON.parse(localStorage.getItem(keyOf(form)) || "null"); } catch { kept = null; }
      if (!kept || !kept.fields) continue;
      // What the page already holds (a form shown again with its problem) wins.
      if (typed(fieldsOf(form))) continue;
      for (const [name, value] of Object.entries(kept.fields)) {
        const els = form.querySelectorAll(`[name="${CSS.escape(name)}"]`);
        for (const el of els) {
          if (el.type === "radio" || el.type === "checkbox") el.checked = el.value === value;
          else el.value = value;
        }
      }
      note(form, "kept", "Not sent yet: what you wrote while your node was not answering is back in the form. Send it when you are ready.");
      putAway(form.querySelector(".kept"), keyOf(form), () => form.reset());
    }
  }
  /** A button that forgets what was kept under `key`, for words nobody wants sent any more. */
  function putAway(p, key, then) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "quiet";
    b.textContent = "Forget it";
    b.addEventListener("click", () => {
      try { localStorage.removeItem(key); } catch { /* nothing kept */ }
      p.remove();
      if (then) then();
    });
    p.append(" ", b);
  }
  /** Points to what was kept for forms of other pages. */
  function pointToKept() {
    const here = new Set([...document.querySelectorAll("form[method=post]")].map(keyOf));
    const main = document.querySelector("main");
    if (!main) return;
    let keys = [];
    try { keys = Object.keys(localStorage).filter((k) => k.startsWith(KEEP) && !here.has(k)); } catch { return; }
    for (const key of keys.sort()) {
      const path = key.slice(KEEP.length);
      // Only an address of this app, never another site's.
      if (!path.startsWith("/") || path.startsWith("//")) continue;
      let kept;
      try { kept = JSON.parse(localStorage.getItem(key) || "null"); } catch { kept = null; }
      if (!kept || !kept.fields || !typed(kept.fields)) continue;
      const words = Object.entries(kept.fields)
        .filter(([k]) => k !== "confirm")
        .map(([, v]) => v.trim())
        .sort((a, b) => b.length - a.length)[0];
      const p = document.createElement("p");
      p.className = "problem kept-elsewhere";
      p.setAttribute("role", "status");
      p.append("Not sent yet: you wrote “" + ([...words].length > 60 ? [...words].slice(0, 60).join("") + "…" : words) + "” while your node was not answering. ");
      const a = document.createElement("a");
      a.href = path;
      a.textContent = "Open it to send it";
      p.append(a);
      putAway(p, key);
      main.prepend(p);
    }
  }
  restore();
  pointToKept();

  const KEPT = "Your node is not answering, so this was not sent. What you wrote is kept here, in this browser, and is sent as soon as your node answers again.";
  const STALE = "This page is not in touch with your node, so nothing was sent. Your words are still in the form: copy them, then open Roundtable again and paste them there.";
  const RESTARTED = "This page is not in touch with your node any more (Roundtable was restarted), so nothing was sent. What you wrote is kept in this browser: open Roundtable again and it is back in its form, ready to send.";
  /** Forms held back while the node could not be reached. */
  const held = new Set();
  let lost = false;

  // --- Saving: a form says "Saving…" until the node has answered. -------
  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (!trusted) {
      ev.preventDefault();
      if (!keep(form)) {
        note(form, "stale", STALE);
      } else if (lost) {
        held.add(form);
        note(form, "stale", KEPT);
      } else {
        note(form, "stale", RESTARTED);
      }
      return;
    }
    forget(form);
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
  /** The node answers again: what was held back is sent, one form at a time. */
  function sendHeld() {
    const form = [...held][0];
    if (!form) return;
    held.clear();
    for (const p of form.querySelectorAll(".stale")) p.remove();
    if (typeof form.requestSubmit === "function") form.requestSubmit();
    else form.submit();
  }

  // --- Limits: a counter near the node's limit. -------------------------
  // Fields carry the node's limit in `data-max` (the core's, one source);
  // the node refuses more, keeping what was typed. Characters are counted
  // as the node counts them.
  const length = (v) => [...v].length;
  for (const field of document.querySelectorAll("[data-max]")) {
    const max = Number(field.dataset.max);
    if (!max) continue;
    const counter = document.createElement("p");
    counter.className = "hint counter";
    counter.id = (field.id || field.name) + "-count";
    counter.setAttribute("aria-live", "polite");
    counter.hidden = true;
    field.insertAdjacentElement("afterend", counter);
    const update = () => {
      const n = length(field.value);
      const near = n >= Math.floor(max * 0.9);
      counter.hidden = !near;
      if (!near) return;
      if (n > max) {
        counter.textContent = `${n} of ${max} characters: ${n - max} too many.`;
        counter.classList.add("over");
      } else {
        counter.textContent = `${max - n} characters left.`;
        counter.classList.remove("over");
      }
    };
    field.addEventListener("input", update);
    update();
  }

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
  // A live read says which parts this page holds (each part carries the
  // digest it was served with) and gets back only the parts that changed;
  // inside those, a part it holds as it is (an item of a feed) is marked
  // to be kept, not sent again.
  const circle = document.body.dataset.circle;
  const net = document.getElementById("net");
  let pending = null;
  function holding() {
    const out = [];
    for (const part of document.querySelectorAll("[data-live][id]")) {
      const t = part.querySelector(":scope > template[data-v]");
      if (t) out.push(part.id + "=" + t.dataset.v);
    }
    return out.join(" ");
  }
  async function refresh() {
    pending = null;
    if (!trusted) return;
    let parts;
    try {
      const res = await fetch(location.href, {
        headers: { "X-Live": "1", "X-Live-Have": holding() },
        credentials: "same-origin",
      });
      if (!res.ok || !(res.headers.get("content-type") || "").startsWith("application/json")) return;
      parts = (await res.json()).parts || [];
    } catch {
      return;
    }
    for (const { id, html } of parts) {
      const part = document.getElementById(id);
      if (!part || !part.hasAttribute("data-live") || part.contains(document.activeElement)) continue;
      const fresh = document.createElement("template");
      fresh.innerHTML = html;
      // A part inside it that this page holds as it is: kept, not sent.
      for (const keep of fresh.content.querySelectorAll("template[data-keep]")) {
        const holder = keep.parentElement;
        const old = holder && holder.id ? document.getElementById(holder.id) : null;
        if (old) holder.replaceChildren(...old.childNodes);
        else keep.remove();
      }
      part.replaceChildren(fresh.content);
    }
  }
  function later() {
    if (pending === null) pending = setTimeout(refresh, 150);
  }
  if ("EventSource" in window && net && run) {
    const events = new EventSource("/events");
    /** Whether the stream said hello yet. */
    let heard = false;
    events.addEventListener("hello", (ev) => {
      if (ev.data === run) {
        // The first hello: what changed between this page and its stream
        // was told to nobody, so read the page once more.
        const first = !heard;
        heard = true;
        trusted = true;
        lost = false;
        if (held.size > 0) { sendHeld(); return; }
        for (const p of document.querySelectorAll(".stale")) p.remove();
        if (net.dataset.lost) { delete net.dataset.lost; later(); }
        else if (first) later();
        return;
      }
      // Another node, or not a node: this page is done.
      done();
    });
    /** This page's node is gone for good (restarted, or someone else answers). */
    function done() {
      trusted = false;
      lost = false;
      events.close();
      for (const form of held) note(form, "stale", RESTARTED);
      held.clear();
      net.textContent = "Roundtable was restarted, so this page can't be used any more. Open Roundtable again (from your applications, or roundtable open in a terminal) to go on.";
      net.className = "net offline";
    }
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
      if (!trusted && !lost) return;
      // Answered, but not with this page's stream: not this run's node.
      if (events.readyState === EventSource.CLOSED) { done(); return; }
      trusted = false;
      lost = true;
      net.dataset.lost = "1";
      net.textContent = "Your node is not answering. Is Roundtable still running? Anything you send now is kept in this browser until it answers again.";
      net.className = "net offline";
    });
  }
})();
