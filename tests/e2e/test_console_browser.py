"""The web console in a real browser (Debian's Chromium driven by Playwright) against `audiomixer dev`:
paste a key, upload a song, see `ready` arrive over the WebSocket, upload a style sound, render a mix,
play it, download it, with no console errors. Screenshots of the main pages are written to the test's
folder, and to docs/console/ with AUDIOMIXER_UPDATE_SCREENSHOTS=1."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from audio_helpers import synth_song, synth_style
from conftest import ROOT, Stack

pytestmark = pytest.mark.slow

BROWSER_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
SCREENSHOTS = ROOT / "docs" / "console"
READY_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def stack(stack: Stack) -> Stack:
    """The session's stack with a tenant of this module's own: an identical upload by the same tenant
    reuses earlier stems, which would skip the stages these tests (and others) watch."""
    return dataclasses.replace(stack, key=stack.new_key("console-browser"))


def _require(reason: str) -> None:
    """Skip locally; fail under CI=true, where the browser tests must run."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"the browser tests must run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _browser_path() -> str | None:
    explicit = os.environ.get("AUDIOMIXER_CHROMIUM")
    if explicit:
        return explicit
    return next((p for name in BROWSER_CANDIDATES if (p := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require("playwright is not installed (pip install the `dev` extra)")
    executable = _browser_path()
    if executable is None:
        _require(
            "no Chromium found (apt-get install chromium; or set AUDIOMIXER_CHROMIUM to a Chromium binary)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # root in containers needs --no-sandbox, small /dev/shm in containers --disable-dev-shm-usage;
            # media must play without a user gesture in headless
            args=["--no-sandbox", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required"],
        )
        yield browser
        browser.close()


class Console:
    """One page of the console with every console error and uncaught exception recorded."""

    def __init__(self, page: Any, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)


@pytest.fixture
def console(browser: Any, tmp_path: Path) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield Console(page, tmp_path)
    context.close()
    if os.environ.get("AUDIOMIXER_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for shot in tmp_path.glob("*.png"):
            shutil.copy(shot, SCREENSHOTS / shot.name)


def _record_statuses(page: Any, selector: str) -> None:
    """Keep every status text a list's badges show, so the test sees the states it passed through."""
    page.evaluate(
        """selector => {
            window.__statuses = [];
            const seen = el => el.matches && el.matches('.status') && window.__statuses.push(el.textContent);
            new MutationObserver(records => records.forEach(r => {
                seen(r.target.nodeType === 3 ? r.target.parentElement : r.target);
                r.addedNodes.forEach(n => n.querySelectorAll && n.querySelectorAll('.status').forEach(seen));
            })).observe(document.querySelector(selector), {subtree: true, childList: true, characterData: true});
        }""",
        selector,
    )


def test_console_song_to_mix_in_a_browser(stack: Stack, console: Console, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = console.page
    song = tmp_path / "browser song.wav"
    song.write_bytes(synth_song())
    style = tmp_path / "square pluck.flac"
    style.write_bytes(synth_style())

    page.goto(f"{stack.api}/")
    expect(page.locator("#key-title")).to_be_visible()
    console.shot("sign-in")
    # A wrong key is refused in place with the API's message (the 401 itself is logged by Chromium).
    page.fill("#key-input", "am_not-a-real-key")
    page.press("#key-input", "Enter")
    expect(page.locator("#key-error")).to_contain_text("API key")
    console.errors.clear()

    page.fill("#key-input", stack.key)
    page.press("#key-input", "Enter")  # the form is keyboard-usable
    expect(page.locator("#projects-title")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('audiomixer.apiKey')") == stack.key

    # Upload a song; its row goes queued -> ... -> ready from WebSocket events alone (the console never polls).
    _record_statuses(page, "#projects")
    page.set_input_files("#song-file", str(song))
    row = page.locator("li.project", has_text="browser song").first
    expect(row).to_be_visible()
    expect(row.locator(".status")).to_have_text("ready", timeout=READY_TIMEOUT_MS)
    statuses = page.evaluate("window.__statuses")
    assert "separating" in statuses and "analysing" in statuses, statuses
    assert (
        page.evaluate(
            "performance.getEntriesByType('resource').filter(e => /\\/status$/.test(e.name)).length"
        )
        == 0
    )
    console.shot("projects")

    # Style-sound library: upload, see it analysed, preview it.
    page.click("text=Style sounds")
    expect(page.locator("#library-title")).to_be_visible()
    page.set_input_files("#sound-files", str(style))
    sound = page.locator("li.sound", has_text="square pluck").first
    expect(sound.locator(".status")).to_have_text("ready", timeout=READY_TIMEOUT_MS)
    sound.get_by_role("button", name="Preview").click()
    page.wait_for_function(
        "() => { const a = document.querySelector('#preview'); return a && a.currentTime > 0; }"
    )
    console.shot("library")

    # Project page: a waveform player per stem, the analysis drawn over it.
    page.click("text=Projects")
    page.locator("li.project a", has_text="browser song").first.click()
    expect(page.locator("#stems-title")).to_be_visible()
    for stem in ("drums", "bass", "vocals", "other"):
        card = page.locator(f".stem[data-stem={stem}]")
        expect(card.get_by_role("button", name=f"Play {stem}")).to_be_enabled()
        expect(card.locator("canvas.overlay")).to_have_attribute("data-onsets", re.compile(r"^\d+$"))
    drums = page.locator(".stem[data-stem=drums]")
    drums.get_by_role("button", name="Solo").click()
    expect(drums.get_by_role("button", name="Solo")).to_have_attribute("aria-pressed", "true")
    drums.get_by_role("button", name="Play drums").click()
    expect(drums.get_by_role("button", name="Play drums")).to_have_text("Pause")
    drums.get_by_role("button", name="Play drums").click()
    console.shot("project")

    # Mix: drums re-rendered from the style sound, the rest as they are; rendered with live progress.
    page.select_option("select[name='drums.style_sound_id']", label="square pluck")
    page.select_option("select[name='drums.mode']", "percussive")
    page.select_option("select[name='output_format']", "wav")
    page.click("#render")
    mix = page.locator("li.mix").first
    expect(mix.locator(".status")).to_have_text("completed", timeout=READY_TIMEOUT_MS)
    mix.get_by_role("button", name="Play").click()
    page.wait_for_function(
        "() => { const a = document.querySelector('li.mix audio'); return a && a.currentTime > 0; }"
    )
    with page.expect_download() as download_info:
        mix.locator("a.download").click()
    downloaded = tmp_path / "mix.wav"
    download_info.value.save_as(downloaded)
    audio, sample_rate = sf.read(io.BytesIO(downloaded.read_bytes()))
    assert sample_rate == 44100 and audio.shape == (6 * 44100, 2)
    assert float(abs(audio).max()) > 0.01  # a real mix, not silence
    console.shot("mix")

    # 360 px wide: nothing runs off the side.
    page.set_viewport_size({"width": 360, "height": 800})
    page.reload()
    expect(page.locator("#mix-title")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    console.shot("project-360px")

    assert console.errors == []


def _drop_file(page: Any, selector: str, name: str, data: bytes, over: bool = False) -> None:
    """Drop one file on the element, as a user dragging it from the desktop (a DragEvent carrying it);
    with `over`, drag it over first and check the element is highlighted."""
    from playwright.sync_api import expect

    transfer = page.evaluate_handle(
        "([name, bytes]) => { const t = new DataTransfer();"
        " t.items.add(new File([new Uint8Array(bytes)], name, {type: 'audio/wav'})); return t; }",
        [name, list(data)],
    )
    if over:
        page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
        expect(page.locator(selector)).to_have_class(re.compile(r"\bover\b"))
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_console_shows_api_errors_in_place(stack: Stack, console: Console, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = console.page
    page.goto(f"{stack.api}/")
    page.evaluate("key => sessionStorage.setItem('audiomixer.apiKey', key)", stack.key)
    page.goto(f"{stack.api}/#/project/{'0' * 32}")
    expect(page.locator("#project-error")).to_have_text("project not found")
    # An empty file is refused by the API with its own message, shown beside the upload.
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    page.goto(f"{stack.api}/#/")
    page.set_input_files("#song-file", str(empty))
    expect(page.locator("#upload-error")).to_have_text("file: the file is empty")
    # Dropped on the drop zone instead, the same file takes the same way (the zone lights up while dragged over).
    page.reload()
    _drop_file(page, "#dropzone", "dropped.wav", b"", over=True)
    expect(page.locator("#upload-error")).to_have_text("file: the file is empty")
    expect(page.locator("#dropzone")).not_to_have_class(re.compile(r"\bover\b"))
    page.click("text=Style sounds")
    _drop_file(page, "#sound-dropzone", "dropped.wav", b"")
    expect(page.locator("#sound-upload-error")).to_contain_text("empty")
    page.click("text=Projects")
    # Keyboard: Tab reaches the navigation, the name field and the file picker, in order.
    page.evaluate("document.activeElement && document.activeElement.blur()")
    reached = []
    for _ in range(24):  # round the whole page once
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()")
        )
    assert reached.index("project-name") < reached.index("song-file"), reached
    assert {"Projects", "Style sounds", "sign-out"} <= set(reached), reached
    # Client-side checks speak in place too.
    page.locator("summary", has_text="Bring your own stems").click()
    page.click("#stems-form button[type=submit]")
    expect(page.locator("#stems-error")).to_have_text("choose at least one stem file")
    # Chromium logs the refused requests (404, 400) itself; nothing else may reach the console.
    assert [e for e in console.errors if "status of 40" not in e] == []


def test_console_uploads_a_large_song_presigned_with_progress(
    stack: Stack, console: Console, tmp_path: Path
) -> None:
    """Over the multipart limit the console asks for a presigned form and posts the file straight to
    storage, showing the upload's progress; the user only picks the file."""
    from playwright.sync_api import expect

    from audiomixer_tools.client import MULTIPART_LIMIT_BYTES, Client

    song, sample_rate = sf.read(io.BytesIO(synth_song()), dtype="int16")
    large = tmp_path / "large song.wav"
    sf.write(large, np.resize(song, (30 * sample_rate, 2)), sample_rate, subtype="PCM_16")
    assert large.stat().st_size > MULTIPART_LIMIT_BYTES

    page = console.page
    page.goto(f"{stack.api}/")
    page.evaluate("key => sessionStorage.setItem('audiomixer.apiKey', key)", stack.key)
    page.goto(f"{stack.api}/#/")
    expect(page.locator("#projects-title")).to_be_visible()
    # A slow uplink (2 MB/s), so the progress bar has time to move.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 2 * 1024 * 1024},
    )
    page.evaluate(
        """() => { window.__progress = []; setInterval(() => {
            const bar = document.querySelector('progress[aria-label="upload progress"]');
            if (bar && !bar.hidden) window.__progress.push(bar.value); }, 20); }"""
    )
    page.set_input_files("#song-file", str(large))
    expect(page.locator("#upload-note")).to_contain_text("straight to storage")
    row = page.locator("li.project", has_text="large song").first
    expect(row).to_be_visible(timeout=60_000)
    progress = page.evaluate("window.__progress")
    assert any(0 < p < 100 for p in progress), progress
    posts = page.evaluate(
        "performance.getEntriesByType('resource').filter(e => e.initiatorType === 'xmlhttprequest')"
        ".map(e => e.name)"
    )
    assert not any(p.endswith("/upload/base-track") for p in posts), posts
    assert any(not p.startswith(stack.api) for p in posts), posts  # the file went to the storage's URL
    assert console.errors == []
    project_id = row.get_attribute("data-project-id")
    assert project_id
    with Client(stack.api, stack.key) as client:
        project = client.project(project_id)
        assert project.name == "large song" and project.status != "failed", project
        client.delete_project(project_id)  # no need to separate it


def test_console_uploads_own_stems_over_the_limit(stack: Stack, console: Console, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from audiomixer_tools.client import MULTIPART_LIMIT_BYTES, Client

    sample_rate = 44100
    t = np.arange(15 * sample_rate) / sample_rate
    files = {}
    for i, stem in enumerate(("drums", "bass", "vocals", "other")):
        files[stem] = tmp_path / f"{stem}.wav"
        tone = 0.2 * np.sin(2 * np.pi * (110.0 * (i + 1)) * t)
        sf.write(files[stem], np.stack([tone, tone], axis=1), sample_rate, subtype="PCM_16")
    assert sum(p.stat().st_size for p in files.values()) > MULTIPART_LIMIT_BYTES

    page = console.page
    page.goto(f"{stack.api}/")
    page.evaluate("key => sessionStorage.setItem('audiomixer.apiKey', key)", stack.key)
    page.goto(f"{stack.api}/#/")
    page.fill("#project-name", "browser stems")
    page.locator("summary", has_text="Bring your own stems").click()
    for stem, path in files.items():
        page.set_input_files(f"#stem-{stem}", str(path))
    page.click("#stems-form button[type=submit]")
    row = page.locator("li.project", has_text="browser stems").first
    expect(row.locator(".status")).to_have_text("ready", timeout=READY_TIMEOUT_MS)
    expect(page.locator("#stems-error")).to_be_empty()
    assert console.errors == []
    project_id = row.get_attribute("data-project-id")
    assert project_id
    with Client(stack.api, stack.key) as client:
        assert client.project(project_id).source_kind == "stems"
        client.delete_project(project_id)
