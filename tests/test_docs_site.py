"""The documentation site (mkdocs.yml): it builds strictly, its generated pages say what the code
says, it fetches nothing from other hosts, and its pages run in a browser without errors.

The site is built once per session into a temporary folder (``mkdocs build --strict``: a broken
link or anchor, a docstring griffe cannot read or an unresolved cross-reference fails it).  The
browser checks drive Debian's headless ``chromium`` over the DevTools protocol on a pipe
(``--remote-debugging-pipe``, stdlib only): uncaught exceptions, ``console.error`` calls, the
browser's own error log (failed resource loads) and HTTP errors of any request count as errors.
Without ``chromium`` (or MkDocs) they skip, except under ``CI``, which installs both.
"""

from __future__ import annotations

import argparse
import base64
import functools
import html
import html.parser
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the pages the browser opens: the home page, one user-guide page, one API page
BROWSER_PAGES = {"home": "", "guide-training": "guide/training/", "api-network": "reference/api/network/"}
BUILD_TIMEOUT_S = 300
PAGE_TIMEOUT_S = 30


def _missing(what: str) -> None:
    """Skip for a missing tool, but fail under CI, whose .ci/run installs it."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI installs it (.ci/run, the `dev` extra)")
    pytest.skip(f"{what} is not installed")


# --------------------------------------------------------------------------- the build
@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The site, built strictly from the checkout into a temporary folder (never site/: the
    suite refuses files left in the checkout)."""
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        _missing("mkdocs (the `docs` extra)")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner on every build
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert done.returncode == 0, f"mkdocs build --strict failed (exit {done.returncode}):\n{done.stderr}{done.stdout}"
    print(f"site built in {time.perf_counter() - started:.1f} s")
    return out


def test_site_builds_strictly(site):
    assert (site / "index.html").is_file()
    assert (site / "reference" / "cli" / "index.html").is_file()
    assert (site / "search" / "search_index.json").is_file()


# --------------------------------------------------------------------------- the CLI page
def _walk_parser(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(command path, option string or subcommand name)`` of every argument, read from the parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path, name
                yield from _walk_parser(sub, (*path, name))
        else:
            for option in action.option_strings:
                yield path, option


def _text(page: Path) -> str:
    """The page's text as a reader sees it (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_cli_page_lists_every_subcommand_and_option(site):
    from fastscratch.tools.cli import build_parser

    page = site / "reference" / "cli" / "index.html"
    text = _text(page)
    page_html = page.read_text(encoding="utf-8")
    found = list(_walk_parser(build_parser()))
    subcommands = {name for path, name in found if not name.startswith("-")}
    assert {"train", "evaluate", "predict", "bench", "info", "compare"} <= subcommands
    assert len(found) > 60, f"the walk found only {len(found)} arguments: {found}"
    missing = []
    for path, name in found:
        if name.startswith("-"):
            # in its own command's table: the hook gives each row the id COMMAND--OPTION
            section = path[-1] if path else "fastscratch"
            rows = re.findall(rf'<tr id="{re.escape(section)}--[^"]*">(.*?)</tr>', page_html, re.S)
            if not any(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", row) for row in rows):
                missing.append(" ".join(("fastscratch", *path, name)))
        elif f"fastscratch {name}" not in text or f'id="{name}"' not in page_html:
            missing.append(f"fastscratch {name} (its section)")
    assert not missing, f"the CLI page lacks: {missing}"
    # each usage line is the parser's own
    assert "fastscratch train [-h]" in text and "fastscratch compare [-h]" in text


def test_cli_page_is_generated_from_the_parser(site):
    """The page says what the parser says, including help text that only the parser holds."""
    from fastscratch.tools.cli import build_parser

    parser = build_parser()
    train = parser.subcommands["train"]
    epochs = next(a for a in train._actions if "--epochs" in a.option_strings)
    text = " ".join(_text(site / "reference" / "cli" / "index.html").split())
    # %(default)s filled in, as --help prints it
    assert f"passes over the training data (default: {epochs.default})" in text
    assert train.description.split(";")[0] in text


# --------------------------------------------------------------------------- the API pages
def test_api_page_of_neural_network(site):
    text = " ".join(_text(site / "reference" / "api" / "network" / "index.html").split())
    for expected in ("NeuralNetwork", "fit", "predict", "save", "Train by gradient descent",
                     "A fully connected network with a softmax output"):
        assert expected in text, f"{expected!r} is not on the NeuralNetwork page"
    # reST roles are rewritten (a cross-reference or code), never printed as they are
    assert ":class:`" not in text and ":meth:`" not in text
    # the parameters section is parsed: each parameter is listed with its annotation
    assert "architecture" in text and "Sequence[int]" in text


def test_api_pages_have_no_raw_rest(site):
    leftovers = {}
    for page in (site / "reference" / "api").rglob("*.html"):
        text = _text(page)
        found = re.findall(r":(?:class|meth|func|attr|data|mod|exc):`[^`]*`|^={5,} +={5,}", text, re.M)
        if found:
            leftovers[str(page.relative_to(site))] = found[:3]
    assert not leftovers, f"reST printed as text: {leftovers}"


def test_api_reference_documents_the_kernels_under_their_installed_name(site):
    text = _text(site / "reference" / "api" / "kernels" / "index.html")
    assert "check_backend" in text and "fastscratch.kernels" in text


# --------------------------------------------------------------------------- offline
class _ResourceParser(html.parser.HTMLParser):
    """The URLs a page makes the browser fetch by itself: scripts, stylesheets, fonts, preloads,
    images, frames (links a reader clicks are not fetched)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "link" and (attributes.get("rel") or "").lower() not in ("canonical", "alternate"):
            self.urls.append(attributes.get("href") or "")
        elif tag in ("script", "img", "iframe", "embed", "source", "audio", "video", "track"):
            self.urls.append(attributes.get("src") or "")
        elif tag == "object":
            self.urls.append(attributes.get("data") or "")
        self._in_style = tag == "style"
        if attributes.get("style"):
            self.urls += _css_urls(attributes["style"] or "")

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += _css_urls(data)


def _css_urls(css: str) -> list[str]:
    """The URLs a style sheet fetches: ``@import`` and ``url(...)`` (fonts, images)."""
    pattern = r"""@import\s+(?:url\()?\s*['"]?([^'")\s;]+)|url\(\s*['"]?([^'")\s]+)"""
    return [imported or other for imported, other in re.findall(pattern, css)]


def _remote(url: str) -> bool:
    return bool(re.match(r"\s*(https?:)?//", url, re.I))


def test_site_fetches_nothing_from_other_hosts(site):
    remote = {}
    for page in site.rglob("*.html"):
        parser = _ResourceParser()
        parser.feed(page.read_text(encoding="utf-8"))
        if found := [url for url in parser.urls if _remote(url)]:
            remote[str(page.relative_to(site))] = found
    for sheet in site.rglob("*.css"):
        if found := [url for url in _css_urls(sheet.read_text(encoding="utf-8")) if _remote(url)]:
            remote[str(sheet.relative_to(site))] = found
    assert not remote, f"pages that fetch from other hosts when viewed: {remote}"
    # and the theme's own assets are in the site, not on a CDN
    assert list((site / "assets" / "javascripts").glob("bundle.*.min.js"))
    assert list((site / "assets" / "stylesheets").glob("main.*.min.css"))


def test_offline_check_catches_remote_resources():
    parser = _ResourceParser()
    parser.feed('<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">'
                '<script src="//cdn.example.org/x.js"></script><a href="https://example.org">fine</a>'
                '<style>@import url("https://fonts.example.org/f.css"); .x{background:url(/local.png)}</style>')
    assert [u for u in parser.urls if _remote(u)] == [
        "https://fonts.googleapis.com/css?family=Roboto", "//cdn.example.org/x.js", "https://fonts.example.org/f.css"]


# --------------------------------------------------------------------------- the browser
class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (fd 3: commands in, fd 4:
    answers and events out, each a JSON message ended by NUL)."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--window-size=1280,900", "--remote-debugging-pipe"]

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def at_fds_3_and_4() -> None:  # runs in the child, before exec
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        # its own session, so that the whole process group (renderers, zygote) can be killed
        self.process = subprocess.Popen([binary, *self.FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, preexec_fn=at_fds_3_and_4,
                                        close_fds=False, start_new_session=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = PAGE_TIMEOUT_S) -> dict:
        """Call ``method`` and return its result; events that arrive meanwhile go to :attr:`events`."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._receive(deadline)
            if answer is None:
                raise TimeoutError(f"no answer to {method} in {timeout} s")
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, predicate, timeout: float) -> dict | None:
        """The first event (already received or arriving within ``timeout``) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            event = self._receive(deadline)
            if event is None:
                return None
            self.events.append(event)

    def _receive(self, deadline: float) -> dict | None:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                return None
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed its pipe (exit {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        # whatever is left of its process group (it ran in its own session)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        os.close(self._to_browser)
        os.close(self._from_browser)


def visit(browser: Browser, url: str, settle_s: float = 1.5) -> tuple[list[str], bytes]:
    """Open ``url`` in a new tab: the errors it reports (see the module docstring) and a PNG of it."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Network", "Page"):
        browser.send(f"{domain}.enable", session=session)
    # the viewport itself 1280x900 (--window-size counts the window's frame in)
    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
    first = len(browser.events)
    browser.send("Page.navigate", {"url": url}, session=session)
    loaded = browser.wait_for(lambda e: e.get("sessionId") == session and e.get("method") == "Page.loadEventFired",
                              PAGE_TIMEOUT_S)
    assert loaded is not None, f"{url} did not finish loading in {PAGE_TIMEOUT_S} s"
    # late work after the load event (Material's search worker fetches its index) reports too
    browser.wait_for(lambda e: False, settle_s)
    errors = []
    for event in browser.events[first:]:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(f"uncaught: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append("console.error: " + " ".join(str(a.get("value", a.get("description")))
                                                       for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}".strip())
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            errors.append(f"request failed: {params.get('errorText')} ({params.get('type')})")
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            errors.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
    shot = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"])
    browser.send("Target.closeTarget", {"targetId": target})
    return errors, shot


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        _missing("chromium (Debian's package)")
    return found


@pytest.fixture
def browser(chromium, tmp_path):
    started = Browser(chromium, tmp_path / "profile")
    try:
        yield started
    finally:
        started.close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture
def serve():
    """``serve(folder) -> base URL``: the folder over HTTP on 127.0.0.1, in a thread (file://
    URLs would break Material's search worker)."""
    servers = []

    def start(folder: Path) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_browser_check_catches_errors(browser, serve, tmp_path):
    """The check can fail: a script error and a missing script are both reported; a clean page is not."""
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "broken.html").write_text("<!doctype html><title>x</title><script src='missing.js'></script>"
                                       "<script>undefined_fn()</script><p>broken</p>")
    (pages / "clean.html").write_text("<!doctype html><title>x</title><script>document.title = 'ok'</script><p>ok</p>")
    base = serve(pages)
    errors, _ = visit(browser, base + "broken.html", settle_s=0.5)
    joined = "\n".join(errors)
    assert "undefined_fn" in joined, errors
    assert "missing.js" in joined, errors
    assert visit(browser, base + "clean.html", settle_s=0.5)[0] == []


def test_pages_run_in_chromium_without_errors(site, browser, serve, tmp_path):
    base = serve(site)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    problems = {}
    for name, page in BROWSER_PAGES.items():
        errors, shot = visit(browser, base + page)
        if errors:
            problems[page or "/"] = errors
        (shots / f"{name}.png").write_bytes(shot)
        assert png_size(shot) == (1280, 900), f"{name}: screenshot of {png_size(shot)}"
        # a blank or near-blank page compresses to a few kB; a rendered Material page does not
        assert len(shot) > 20_000, f"{name}: the screenshot is only {len(shot)} bytes"
    assert not problems, f"errors in the browser: {problems}"
    # FASTSCRATCH_DOCS_SHOTS=DIR keeps the screenshots for a person to look at
    if keep := os.environ.get("FASTSCRATCH_DOCS_SHOTS"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, Path(keep) / shot.name)
