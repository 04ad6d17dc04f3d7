"""The browser's view of its websocket: the header's connection dot and the "Reconnecting…" banner.

NiceGUI's own "Connection lost" popup (`#popup`, bottom corner, 2 s late) is hidden on framed pages and
replaced by one banner at the top. Nothing here talks to the server: a script polls socket.io's state
in the browser, so it keeps working while the server is gone. What brings live data back is NiceGUI:
a short drop reconnects the same client and replays the missed messages; after a restart the
handshake is refused (the server no longer knows the client) and NiceGUI reloads the page, which the
session cookie (kept in the database) signs in again."""

from __future__ import annotations

from nicegui import ui

BANNER_ID = "nox-reconnect"
DOT_ID = "nox-conn"
RECONNECTING = "Reconnecting…"
DETAIL = "The connection to the server was lost. Live data resumes by itself."
SHOW_AFTER_MS = 1000  # a blip shorter than this (a socket.io transport upgrade) shows no banner

_CSS = f"""
#popup {{ display: none !important; }}
#{BANNER_ID} {{ position: fixed; top: 0; left: 0; right: 0; z-index: 7000; display: flex;
  justify-content: center; align-items: center; gap: .5rem; background: #fbbf24; color: #1c1917;
  font-size: .875rem; box-shadow: 0 2px 6px rgba(0, 0, 0, .25); }}
#{BANNER_ID}:not(:empty) {{ padding: .4rem 1rem; }}
#{BANNER_ID} .nox-reconnect-spinner {{ width: .9rem; height: .9rem; border-radius: 50%;
  border: 2px solid currentColor; border-right-color: transparent; animation: nox-spin .8s linear infinite; }}
#{BANNER_ID} .nox-reconnect-detail {{ opacity: .85; }}
@keyframes nox-spin {{ to {{ transform: rotate(360deg); }} }}
@media (prefers-reduced-motion: reduce) {{ #{BANNER_ID} .nox-reconnect-spinner {{ animation: none; }} }}
"""

# Polls socket.io's state every 250 ms (client-side only): colours the dot at once, fills the banner
# after SHOW_AFTER_MS offline, empties it when the socket is back. The banner is a live region that
# stays in the page while empty, so screen readers announce the text when it appears.
_JS = f"""
(() => {{
  let seenUp = false, downSince = null;
  const titles = {{up: 'Live: connected to the server', down: 'Offline: reconnecting…',
                   connecting: 'Connecting…'}};
  const setBanner = (banner, shown) => {{
    if ((banner.dataset.shown === 'true') === shown) return;
    banner.dataset.shown = String(shown);
    banner.replaceChildren();
    if (!shown) return;
    // Just below the header (its height varies with the screen), over the page rather than the header.
    const header = document.querySelector('.q-header');
    banner.style.top = `${{header ? header.getBoundingClientRect().bottom : 0}}px`;
    const spinner = document.createElement('span');
    spinner.className = 'nox-reconnect-spinner';
    spinner.setAttribute('aria-hidden', 'true');
    const text = document.createElement('strong');
    text.textContent = {RECONNECTING!r};
    const detail = document.createElement('span');
    detail.className = 'nox-reconnect-detail';
    detail.textContent = {DETAIL!r};
    banner.append(spinner, text, detail);
  }};
  const check = () => {{
    const up = !!(window.socket && window.socket.connected);
    seenUp = seenUp || up;
    const state = up ? 'up' : (seenUp ? 'down' : 'connecting');
    const dot = document.getElementById({DOT_ID!r});
    if (dot && dot.dataset.state !== state) {{
      dot.dataset.state = state;
      dot.title = titles[state];
    }}
    downSince = state === 'down' ? (downSince ?? Date.now()) : null;
    const banner = document.getElementById({BANNER_ID!r});
    if (banner) setBanner(banner, downSince !== null && Date.now() - downSince >= {SHOW_AFTER_MS});
  }};
  check();
  setInterval(check, 250);
}})();
"""


def connection_indicator() -> None:
    """The header's dot (place it where it should appear)."""
    ui.html(
        f'<span id="{DOT_ID}" class="nox-conn" data-state="connecting" title="Connecting…"></span>',
        sanitize=False,
    )


def reconnect_banner() -> None:
    """The banner (outside NiceGUI's app, so it needs no server to appear) and the script that drives it
    and the dot. Once per page."""
    ui.add_css(_CSS)
    ui.add_body_html(
        f'<div id="{BANNER_ID}" role="status" aria-live="polite" data-shown="false"></div>'
        f"<script>{_JS}</script>"
    )
