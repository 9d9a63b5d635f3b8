// sigcast dashboard: connects back to the server it came from as a WebSocket client, with
// its token offered as a subprotocol ("sigcast.v1", "bearer.<JWT>"), and shows the
// connection, a live price chart (the market-data topic <market>.<SYMBOL>.1m) with buy and
// sell markers, the signal feed, a button that sends `test`, and the track record (every
// strategy's paper-traded signals, from GET /v1/performance, with a small equity curve each).
//
// The token comes from the page address (#token=..., removed from the address bar at once
// and never sent to the server in a URL) or the form, and is kept in sessionStorage only.
"use strict";
(() => {
  const PROTOCOL = "sigcast.v1";
  const MAX_POINTS = 3000;
  const MAX_ROWS = 200;
  const TRACK_EVERY = 10000;
  const $ = (id) => document.getElementById(id);

  // Everything the page knows; `window.sigcastDashboard` for tests and curious operators.
  const state = {
    status: "idle",
    lastClose: null,
    market: "spot",
    symbol: "",
    chosen: false,
    topic: null,
    points: [],
    markers: [],
    signals: 0,
    tests: 0,
    errors: [],
    ws: null,
    retries: 0,
    // The latest GET /v1/performance answer, refreshed every TRACK_EVERY ms.
    track: null,
  };
  window.sigcastDashboard = state;

  function takeToken() {
    const hash = new URLSearchParams(location.hash.slice(1));
    const fromHash = hash.get("token");
    if (fromHash) {
      sessionStorage.setItem("sigcast.token", fromHash);
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem("sigcast.token");
  }

  function setStatus(kind, text) {
    state.status = kind;
    const el = $("status");
    el.dataset.state = kind;
    el.textContent = text;
    $("test").disabled = kind !== "connected";
  }

  function connect() {
    const token = takeToken();
    if (!token) {
      $("login").hidden = false;
      setStatus("idle", "no token: paste one");
      return;
    }
    setStatus("connecting", "connecting");
    let ws;
    try {
      ws = new WebSocket(`wss://${location.host}/`, [PROTOCOL, "bearer." + token]);
    } catch (e) {
      setStatus("refused", "cannot connect: " + e.message);
      return;
    }
    state.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      state.retries = 0;
      $("login").hidden = true;
      setStatus("connected", "connected");
      state.topic = null;
      follow();
    };
    ws.onmessage = (e) => onMessage(e.data);
    ws.onclose = (e) => {
      state.ws = null;
      state.topic = null;
      if (!opened) {
        // A refused handshake (401) looks like this to a page: no status code is exposed.
        setStatus("refused", "refused: check the token (or the server is down)");
        $("login").hidden = false;
      } else {
        setStatus("closed", `closed ${e.code}${e.reason ? " " + e.reason : ""}; reconnecting`);
      }
      const delay = Math.min(30000, 1000 * 2 ** state.retries++);
      setTimeout(connect, opened ? delay : Math.max(delay, 5000));
    };
  }

  function send(value) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(typeof value === "string" ? value : JSON.stringify(value));
    }
  }

  // Subscribes to the chosen market's 1m klines (every update carries the latest price).
  function follow() {
    const wanted = state.symbol ? `${state.market}.${state.symbol}.1m` : null;
    if (wanted === state.topic) return;
    if (state.topic) send({ type: "unsubscribe", topic: state.topic });
    state.topic = wanted;
    state.points = [];
    state.lastClose = null;
    state.markers = state.markers.filter((m) => m.symbol === state.symbol);
    $("price").textContent = "-";
    if (wanted) send({ type: "subscribe", topic: wanted });
    draw();
  }

  function choose(market, symbol, byUser) {
    state.market = market;
    state.symbol = symbol.trim().toUpperCase();
    state.chosen = state.chosen || byUser;
    $("market").value = state.market;
    $("symbol").value = state.symbol;
    follow();
  }

  function onMessage(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    const c = m.content || {};
    switch (m.type) {
      case "buy":
      case "sell":
        onSignal(m, c);
        break;
      case "kline":
        if (c.symbol === state.symbol && c.market === state.market) {
          const close = Number(c.close);
          state.lastClose = close;
          state.points.push({ t: c.event_time_ms, price: close });
          if (state.points.length > MAX_POINTS) state.points.splice(0, state.points.length - MAX_POINTS);
          $("price").textContent = `${c.symbol} ${c.close}`;
          schedule();
        }
        break;
      case "error":
        state.errors.push(m.error_code);
        $("note").textContent = `${m.error_code}: ${m.error_message || ""}`;
        break;
    }
  }

  function onSignal(m, c) {
    if (m.is_test) state.tests++;
    else state.signals++;
    if (!state.symbol || (!state.chosen && state.points.length === 0 && c.symbol !== state.symbol)) {
      choose(state.market, c.symbol, false);
    }
    addOption(c.symbol);
    if (c.symbol === state.symbol) {
      // Real signals sit at their own time; test signals at the latest price point, now.
      const last = state.points[state.points.length - 1];
      state.markers.push({
        t: m.is_test && last ? last.t : c.timestamp * 1000,
        price: c.price,
        side: m.type,
        test: !!m.is_test,
        symbol: c.symbol,
      });
      if (state.markers.length > MAX_POINTS) state.markers.shift();
      schedule();
    }
    const row = document.createElement("tr");
    row.className = (m.is_test ? "is-test " : "") + m.type;
    const cells = [
      new Date(c.timestamp * 1000).toLocaleTimeString(),
      m.is_test ? `${m.type} (test)` : m.type,
      c.symbol,
      String(c.price),
      c.strategy || "",
      m.seq === undefined ? "" : String(m.seq),
    ];
    for (const value of cells) {
      const td = document.createElement("td");
      td.textContent = value; // text only: nothing from the wire becomes markup
      row.appendChild(td);
    }
    const body = $("feed").tBodies[0];
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
  }

  function addOption(symbol) {
    const list = $("symbols");
    if (![...list.options].some((o) => o.value === symbol)) {
      const option = document.createElement("option");
      option.value = symbol;
      list.appendChild(option);
    }
  }

  let pending = false;
  function schedule() {
    if (!pending) {
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        draw();
      });
    }
  }

  function draw() {
    const canvas = $("chart");
    const g = canvas.getContext("2d");
    const w = canvas.width;
    const h = canvas.height;
    const pad = { l: 70, r: 16, t: 16, b: 28 };
    g.clearRect(0, 0, w, h);
    const style = getComputedStyle(document.body);
    g.fillStyle = style.color;
    g.font = "12px system-ui, sans-serif";
    const marks = state.markers.filter((m) => m.symbol === state.symbol);
    const all = state.points.concat(marks);
    if (all.length === 0) {
      g.fillText(state.symbol ? `waiting for ${state.topic}` : "waiting for the first signal", pad.l, h / 2);
      return;
    }
    let t0 = Math.min(...all.map((p) => p.t));
    let t1 = Math.max(...all.map((p) => p.t));
    let p0 = Math.min(...all.map((p) => p.price));
    let p1 = Math.max(...all.map((p) => p.price));
    if (t1 === t0) t1 = t0 + 1000;
    const span = p1 - p0 || Math.abs(p1) * 0.001 || 1;
    p0 -= span * 0.08;
    p1 += span * 0.08;
    const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (w - pad.l - pad.r);
    const y = (p) => pad.t + (1 - (p - p0) / (p1 - p0)) * (h - pad.t - pad.b);
    g.strokeStyle = "#8886";
    g.beginPath();
    g.moveTo(pad.l, pad.t);
    g.lineTo(pad.l, h - pad.b);
    g.lineTo(w - pad.r, h - pad.b);
    g.stroke();
    g.fillText(p1.toPrecision(7), 4, pad.t + 10);
    g.fillText(p0.toPrecision(7), 4, h - pad.b);
    g.fillText(new Date(t0).toLocaleTimeString(), pad.l, h - 8);
    const right = new Date(t1).toLocaleTimeString();
    g.fillText(right, w - pad.r - g.measureText(right).width, h - 8);
    if (state.points.length > 0) {
      g.strokeStyle = "#3b7dd8";
      g.lineWidth = 1.5;
      g.beginPath();
      state.points.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p.price)) : g.moveTo(x(p.t), y(p.price))));
      g.stroke();
    }
    for (const m of marks) {
      const cx = x(m.t);
      const cy = y(m.price);
      const up = m.side === "buy";
      const color = up ? style.getPropertyValue("--buy") : style.getPropertyValue("--sell");
      g.beginPath();
      g.moveTo(cx, up ? cy + 2 : cy - 2);
      g.lineTo(cx - 6, up ? cy + 12 : cy - 12);
      g.lineTo(cx + 6, up ? cy + 12 : cy - 12);
      g.closePath();
      if (m.test) {
        g.strokeStyle = color;
        g.stroke();
      } else {
        g.fillStyle = color;
        g.fill();
      }
    }
  }

  // The track record: asked with the token in a header (never in the URL), drawn with DOM
  // nodes and textContent only (strategy names come from the server).
  async function refreshTrack() {
    const token = sessionStorage.getItem("sigcast.token");
    if (!token) return;
    try {
      const answer = await fetch("/v1/performance", { headers: { Authorization: "Bearer " + token } });
      if (!answer.ok) return;
      state.track = await answer.json();
      drawTrack(state.track);
    } catch (e) {
      state.errors.push("track: " + e);
    }
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  function figure(value, digits) {
    return typeof value === "number" ? value.toFixed(digits) : "-";
  }

  function sparkline(equity) {
    const canvas = document.createElement("canvas");
    canvas.width = 160;
    canvas.height = 32;
    canvas.className = "equity";
    if (!Array.isArray(equity) || equity.length < 2) return canvas;
    const values = equity.map((p) => p[1]);
    const lo = Math.min(...values), hi = Math.max(...values);
    const span = hi > lo ? hi - lo : 1;
    const t0 = equity[0][0], t1 = Math.max(equity[equity.length - 1][0], t0 + 1);
    const g = canvas.getContext("2d");
    g.strokeStyle = values[values.length - 1] < values[0] ? "#d73027" : "#1a9850";
    g.lineWidth = 1.5;
    g.beginPath();
    equity.forEach(([t, v], i) => {
      const x = (t - t0) / (t1 - t0) * 156 + 2, y = 30 - (v - lo) / span * 28;
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
    return canvas;
  }

  function drawTrack(report) {
    const body = $("track").tBodies[0];
    body.replaceChildren();
    for (const s of report.strategies || []) {
      const f = s.figures || {};
      const row = document.createElement("tr");
      cell(row, s.strategy);
      const chart = document.createElement("td");
      chart.appendChild(sparkline(s.equity));
      row.appendChild(chart);
      cell(row, f.closed_trades === undefined ? "-" : `${f.closed_trades} (+${f.open_trades} open)`);
      cell(row, figure(f.win_rate_pct, 1));
      cell(row, figure(f.total_return_pct, 3));
      cell(row, figure(f.max_drawdown_pct, 3));
      cell(row, figure(f.profit_factor, 2));
      cell(row, figure(f.sharpe, 2));
      body.appendChild(row);
    }
    const untracked = (report.untracked || []).map((u) => `${u.strategy} ${u.symbol} ×${u.signals}`);
    $("untracked").textContent = untracked.length ? "Untracked (no market price): " + untracked.join(", ") : "";
  }

  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    sessionStorage.setItem("sigcast.token", token);
    $("token").value = "";
    if (state.ws) state.ws.close(1000, "new token");
    else connect();
  });
  $("market").addEventListener("change", () => choose($("market").value, $("symbol").value, true));
  $("symbol").addEventListener("change", () => choose($("market").value, $("symbol").value, true));
  $("test").addEventListener("click", () => send("test"));

  const query = new URLSearchParams(location.search);
  if (query.get("market") === "futures") state.market = "futures";
  if (query.get("symbol")) choose(state.market, query.get("symbol"), true);
  draw();
  connect();
  refreshTrack();
  setInterval(refreshTrack, TRACK_EVERY);
})();
