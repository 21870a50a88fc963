// Live status over the WebSocket. The URL is built here and nowhere else. It carries a short-lived,
// single-use ticket (POST /api/v1/ws-tickets), never the API key: URLs end up in logs, and on AWS the
// key is refused there.

import { call } from "./api.js";

const WS_BASE_STORAGE = "audiomixer.wsBase";
const TERMINAL = {
  project: ["ready", "failed"],
  mix: ["completed", "failed"],
  sound: ["ready", "failed"],
};

/** The API Gateway WebSocket URL (the stack's WebSocketUrl output); empty: this server's /ws/ paths. */
export function getWsBase() {
  return sessionStorage.getItem(WS_BASE_STORAGE) || "";
}

export function setWsBase(url) {
  if (url) sessionStorage.setItem(WS_BASE_STORAGE, url);
  else sessionStorage.removeItem(WS_BASE_STORAGE);
}

export function wsUrl(kind, id, ticket) {
  const credential = `ticket=${encodeURIComponent(ticket)}`;
  const base = getWsBase();
  if (base) {
    const sep = base.includes("?") ? "&" : "?";
    return `${base}${sep}${credential}&${kind}_id=${encodeURIComponent(id)}`;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws/${kind}/${encodeURIComponent(id)}?${credential}`;
}

/** Follow one project, mix or sound: onEvent(event) for the current state and every change, until a
 *  terminal status. Returns a function that stops watching. */
export function watch(kind, id, onEvent, onClosed) {
  let stopped = false;
  let socket = null;
  call("POST", "/ws-tickets").then(
    ({ ticket }) => {
      if (!stopped) open(ticket);
    },
    (err) => {
      if (!stopped && onClosed) onClosed({ code: 4401, reason: err.message });
    },
  );
  function open(ticket) {
    socket = new WebSocket(wsUrl(kind, id, ticket));
    socket.addEventListener("open", () => {
      // API Gateway cannot post during $connect: ask for the current state (the local seed URLs send it).
      if (getWsBase()) socket.send(JSON.stringify({ action: "sync" }));
    });
    socket.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event.id !== id) return;
      onEvent(event);
      if (TERMINAL[kind].includes(event.status)) stop();
    });
    socket.addEventListener("close", (e) => {
      if (!stopped && onClosed) onClosed(e);
    });
  }
  function stop() {
    if (stopped) return;
    stopped = true;
    if (socket === null) return; // the ticket is still on its way: open() will not run
    if (socket.readyState === WebSocket.CONNECTING) {
      socket.addEventListener("open", () => socket.close(1000));
    } else if (socket.readyState === WebSocket.OPEN) {
      socket.close(1000);
    }
  }
  return stop;
}
