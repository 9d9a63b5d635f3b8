// Drives sigcast's dashboard in Debian's Chromium with playwright-core (which downloads no
// browser): node dashboard.js GOOD_URL BAD_URL SCREENSHOT PUBLISHER_TOKEN. Prints one JSON
// object of what the page showed, for tests/dashboard.rs to check.
"use strict";
const { chromium } = require("playwright-core");

const [goodUrl, badUrl, screenshot, publisher] = process.argv.slice(2);
const wait = (page, fn, arg, ms) => page.waitForFunction(fn, arg, { timeout: ms });

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.SIGCAST_E2E_CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  // The test server's certificate is self-signed.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const requests = [];
  const problems = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
  page.on("pageerror", (e) => problems.push(String(e)));

  await page.goto(goodUrl);
  await wait(page, () => window.sigcastDashboard.status === "connected", null, 20000);
  const addressAfterLoad = page.url();
  await wait(page, () => window.sigcastDashboard.points.length >= 3, null, 30000);
  await wait(page, () => window.sigcastDashboard.markers.some((m) => !m.test), null, 60000);
  await page.click("#test");
  await wait(page, () => window.sigcastDashboard.tests >= 2, null, 10000);

  // A signal published through the publish API, at the chart's latest price, is marked.
  const price = await page.evaluate(() => window.sigcastDashboard.lastClose);
  const response = await page.request.post(new URL("/v1/signals", goodUrl).href, {
    headers: { Authorization: `Bearer ${publisher}` },
    data: {
      type: "sell",
      content: { symbol: "BTCUSDT", price, timestamp: Math.floor(Date.now() / 1000), strategy: "desk-alert" },
      is_test: false,
    },
  });
  const published = { status: response.status(), price };
  await wait(
    page,
    (p) => window.sigcastDashboard.markers.some((m) => !m.test && m.side === "sell" && m.price === p),
    price,
    10000,
  );
  // The track-record panel fills with the strategy's paper-traded signals.
  await wait(page, () => ((window.sigcastDashboard.track || {}).strategies || []).length > 0, null, 40000);
  const track = await page.$$eval("#track tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  await page.waitForTimeout(200); // one more frame drawn
  const rows = await page.$$eval("#feed tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  const status = await page.textContent("#status");
  const state = await page.evaluate(() => {
    const d = window.sigcastDashboard;
    return {
      symbol: d.symbol,
      topic: d.topic,
      points: d.points.length,
      markers: d.markers.map((m) => ({ side: m.side, test: m.test, price: m.price })),
      signals: d.signals,
      tests: d.tests,
      errors: d.errors,
    };
  });
  // What the chart shows: pixels near the price line's and the markers' colours.
  const pixels = await page.evaluate(() => {
    const c = document.getElementById("chart");
    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const near = (i, r, g, b) => Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60;
    const count = { line: 0, buy: 0, sell: 0 };
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] < 200) continue;
      if (near(i, 0x3b, 0x7d, 0xd8)) count.line++;
      if (near(i, 0x1a, 0x98, 0x50)) count.buy++;
      if (near(i, 0xd7, 0x30, 0x27)) count.sell++;
    }
    return count;
  });
  await page.screenshot({ path: screenshot });

  // A fresh tab (its own sessionStorage) with a token the server refuses.
  const bad = await context.newPage();
  await bad.goto(badUrl);
  await wait(bad, () => window.sigcastDashboard.status === "refused", null, 20000);
  const refusedStatus = await bad.textContent("#status");
  const loginShown = await bad.isVisible("#login");

  await browser.close();
  console.log(
    JSON.stringify({ addressAfterLoad, status, rows, track, state, published, pixels, requests, problems, refusedStatus, loginShown }),
  );
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
