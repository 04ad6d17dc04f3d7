"""Real dashboards: headless system Chromium pages through Playwright (`python -m bench.browsers`).

Each page gets its own browser context signed in by the `nox_session` cookie and opens `/`. Once
the socket handshake is done, `window.noxAppend` is wrapped so that every chart update records
Date.now() minus the sample's timestamp, the same latency the simulated clients measure.
Same JSON-lines protocol as bench.simclient: config, "ready", "measure", "stop" -> "result".
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from bench.util import percentile, run_child

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
WRAP = """() => {
  if (window.__noxBench) return true;
  const original = window.noxAppend;
  window.__noxBench = [];
  window.noxAppend = (updates, windowMs) => {
    const first = Object.values(updates)[0];
    if (first) window.__noxBench.push(Date.now() - first[0]);
    return original(updates, windowMs);
  };
  return true;
}"""


async def main_async(config: dict[str, Any], emit: Any) -> None:
    from playwright.async_api import async_playwright

    base = str(config["base"])
    sessions = list(config["sessions"])
    count = int(config["count"])
    started = time.monotonic()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(config.get("executable", CHROMIUM)), headless=True, args=CHROMIUM_ARGS
        )
        try:
            pages = []
            for index in range(count):
                context = await browser.new_context()
                await context.add_cookies(
                    [{"name": "nox_session", "value": sessions[index % len(sessions)], "url": base}]
                )
                page = await context.new_page()
                await page.goto(f"{base}/", wait_until="load", timeout=60_000)
                if "/login" in page.url:
                    raise RuntimeError(f"page {index} was sent to {page.url}")
                await page.wait_for_function(
                    "window.did_handshake === true && typeof window.noxAppend === 'function'",
                    timeout=30_000,
                )
                await page.evaluate(WRAP)
                pages.append(page)
            for page in pages:  # every page has drawn at least one live update
                await page.wait_for_function("window.__noxBench.length > 0", timeout=30_000)
            emit(
                "ready", connected=len(pages), failed=0, errors=[], connect_seconds=time.monotonic() - started
            )

            loop = asyncio.get_running_loop()
            window_started = time.monotonic()
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                command = json.loads(line).get("cmd") if line.strip() else "stop"
                if command == "measure":
                    for page in pages:
                        await page.evaluate("() => { window.__noxBench = []; }")
                    window_started = time.monotonic()
                elif command == "stop":
                    break
            elapsed = time.monotonic() - window_started
            latencies: list[float] = []
            for page in pages:
                latencies.extend(await page.evaluate("() => window.__noxBench"))
            emit(
                "result",
                clients=len(pages),
                failed=0,
                seconds=elapsed,
                updates=len(latencies),
                p50_ms=percentile(latencies, 50),
                p95_ms=percentile(latencies, 95),
                max_ms=max(latencies) if latencies else float("nan"),
                updates_per_client_per_s=len(latencies) / max(1, len(pages)) / elapsed,
                version=browser.version,
            )
        finally:
            await browser.close()


def main() -> None:
    run_child(main_async)


if __name__ == "__main__":
    main()
