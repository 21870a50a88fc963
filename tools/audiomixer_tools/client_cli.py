"""`audiomixer upload|styles|mix|watch|download`: the public API from a shell, through the client.

Every command takes --server/--token (or AUDIOMIXER_URL/AUDIOMIXER_TOKEN) and prints ids on stdout,
progress on stderr; an API error is one line `error: <the API's message>` and exit status 1, never a
traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from audiomixer_tools.client import ApiError, Client, Event, Kind

BAR_WIDTH = 30


class ProgressBar:
    """One line on stderr, redrawn in place on a terminal; whole lines (only on change) otherwise."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream: TextIO = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = ""

    def show(self, percent: float, note: str = "") -> None:
        percent = max(0.0, min(100.0, percent))
        filled = int(BAR_WIDTH * percent / 100)
        line = f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent:3.0f}% {note}".rstrip()
        if line == self.last:
            return
        self.last = line
        self.stream.write(("\r\x1b[K" + line) if self.tty else line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"audiomixer {prog}", description=description)
    parser.add_argument("--server", default=None, help="API base URL (default: $AUDIOMIXER_URL)")
    parser.add_argument("--token", default=None, help="API key (default: $AUDIOMIXER_TOKEN)")
    parser.add_argument(
        "--ws-url",
        default=None,
        help="API Gateway WebSocket URL on AWS (default: $AUDIOMIXER_WS_URL; empty: the server's /ws/)",
    )
    return parser


def _client(args: argparse.Namespace) -> Client:
    return Client.from_env(args.server, args.token, ws_url=args.ws_url or os.environ.get("AUDIOMIXER_WS_URL"))


def _run(body: Callable[[], int]) -> int:
    try:
        return body()
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except (ValueError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that is not there, a folder not writable
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def follow(client: Client, kind: Kind, object_id: str, quiet: bool = False, timeout_s: float = 3600) -> Event:
    """Follow one object over the WebSocket with a progress bar; returns the final (successful) event."""
    bar = ProgressBar(f"{kind} {object_id[:8]}")

    def shown(event: Event) -> None:
        if not quiet:
            bar.show(100 if event.status in ("ready", "completed") else event.progress, event.status)

    try:
        return client.wait(kind, object_id, on_event=shown, timeout_s=timeout_s)
    finally:
        bar.done()


def _upload_bar(quiet: bool) -> tuple[ProgressBar, Callable[[int, int], None] | None]:
    bar = ProgressBar("upload ")
    if quiet:
        return bar, None
    return bar, lambda sent, total: bar.show(100 * sent / max(total, 1), f"{sent / 1048576:.1f} MB")


def upload_main(argv: list[str]) -> int:
    parser = _parser("upload", "Upload a song (or your own stems) and follow it until its stems are ready.")
    parser.add_argument("song", nargs="?", type=Path, help="the song file (wav, flac, mp3, ogg, aiff, m4a)")
    parser.add_argument(
        "--stems", type=Path, default=None, metavar="DIR", help="folder with drums|bass|vocals|other.*"
    )
    parser.add_argument("--name", default=None, help="project name (default: the file name)")
    parser.add_argument("--no-wait", action="store_true", help="print the project id and return at once")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if (args.song is None) == (args.stems is None):
        parser.error("give a SONG or --stems DIR (one of them)")

    def body() -> int:
        with _client(args) as client:
            bar, progress = _upload_bar(args.quiet)
            if args.stems is not None:
                project_id = client.upload_stems(_stems_in(args.stems), args.name, progress)
            else:
                project_id = client.upload_song(args.song, args.name, progress)
            bar.done()
            print(project_id, flush=True)
            if not args.no_wait:
                follow(client, "project", project_id, args.quiet)
        return 0

    return _run(body)


def _stems_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ValueError(f"--stems {folder}: not a folder")
    from audiomixer.settings import STEMS

    found = {p.stem.lower(): p for p in sorted(folder.iterdir()) if p.is_file() and p.stem.lower() in STEMS}
    if not found:
        raise ValueError(f"--stems {folder}: no file named {', '.join(f'{s}.*' for s in STEMS)}")
    return found


def styles_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="audiomixer styles", description="Your library of style sounds.")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="add sounds and wait until they are analysed; prints their ids")
    add.add_argument("files", nargs="+", type=Path)
    add.add_argument("--no-wait", action="store_true")
    add.add_argument("-q", "--quiet", action="store_true")
    for name in ("--server", "--token", "--ws-url"):
        add.add_argument(name, default=None)
    args = parser.parse_args(argv)

    def body() -> int:
        with _client(args) as client:
            ids = client.add_styles(args.files)
            for path, sound_id in zip(args.files, ids, strict=True):
                print(f"{sound_id}\t{path.name}", flush=True)
            if not args.no_wait:
                for sound_id in ids:
                    follow(client, "sound", sound_id, args.quiet)
        return 0

    return _run(body)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out = {}
    for value in values:
        stem, sep, rest = value.partition("=")
        if not sep or not rest:
            raise ValueError(f"{option} expects STEM=VALUE, got {value!r}")
        out[stem.strip()] = rest.strip()
    return out


def mix_main(argv: list[str]) -> int:
    parser = _parser("mix", "Render a mix of a ready project and follow it; -o downloads the result.")
    parser.add_argument("project", help="project id")
    parser.add_argument(
        "--style",
        action="append",
        default=[],
        metavar="STEM=SOUND",
        help="re-render STEM from SOUND: a sound id of your library, or an audio file (added first)",
    )
    add = parser.add_argument
    add("--volume", action="append", default=[], metavar="STEM=GAIN", help="0 to 2 (1: as is)")
    add("--mode", action="append", default=[], metavar="STEM=MODE", help="auto, percussive or tonal")
    add("--mute", action="append", default=[], metavar="STEM", help="leave STEM out of the mix")
    parser.add_argument("--grain-ms", type=int, default=None, help="grain duration in ms (default 120)")
    parser.add_argument("--no-pitch-mapping", action="store_true")
    parser.add_argument("--no-envelope", action="store_true")
    parser.add_argument("--format", choices=["wav", "flac", "mp3"], default=None, help="output format")
    parser.add_argument("--seed", type=int, default=None, help="grain-choice seed (same seed: same audio)")
    parser.add_argument("--target-lufs", type=float, default=None, help="loudness target (default: none)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="download the mix to this file")
    parser.add_argument("--no-wait", action="store_true", help="print the mix id and return at once")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)

    def body() -> int:
        from audiomixer.mix_settings import MixSettings

        styles = _pairs(args.style, "--style")
        volumes = {stem: float(v) for stem, v in _pairs(args.volume, "--volume").items()}
        modes = _pairs(args.mode, "--mode")
        given = {
            "grain_duration_ms": args.grain_ms,
            "use_pitch_mapping": False if args.no_pitch_mapping else None,
            "use_envelope": False if args.no_envelope else None,
            "output_format": args.format,
            "seed": args.seed,
            "target_lufs": args.target_lufs,
        }
        settings = MixSettings(**{k: v for k, v in given.items() if v is not None})
        with _client(args) as client:
            for stem, sound in list(styles.items()):
                if Path(sound).is_file():  # a file: into the library first
                    (sound_id,) = client.add_styles([Path(sound)])
                    follow(client, "sound", sound_id, args.quiet)
                    styles[stem] = sound_id
            mix_id = client.mix(
                args.project, styles, volumes=volumes, modes=modes, muted=args.mute, settings=settings
            )
            print(mix_id, flush=True)
            if args.no_wait:
                return 0
            follow(client, "mix", mix_id, args.quiet)
            if args.output is not None:
                client.download_mix(mix_id, args.output)
                print(f"saved {args.output}", file=sys.stderr)
        return 0

    return _run(body)


def watch_main(argv: list[str]) -> int:
    parser = _parser("watch", "Follow a project, mix or style sound over the WebSocket until it is done.")
    parser.add_argument("id", help="a project, mix or sound id")
    parser.add_argument(
        "--kind", choices=["project", "mix", "sound"], default=None, help="default: found from the id"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait (default 3600)")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)

    def body() -> int:
        with _client(args) as client:
            kind = args.kind or _kind_of(client, args.id)
            event = follow(client, kind, args.id, args.quiet, timeout_s=args.timeout)
            print(f"{kind} {args.id} {event.status}")
        return 0

    return _run(body)


def _kind_of(client: Client, object_id: str) -> Kind:
    """The id's kind: ids are unique across kinds, so at most one lookup answers."""
    lookups: list[tuple[Kind, Callable[[str], object]]] = [
        ("project", client.project),
        ("mix", client.mix_status),
        ("sound", client.sound),
    ]
    for kind, lookup in lookups:
        try:
            lookup(object_id)
            return kind
        except ApiError as exc:
            if exc.status != 404:
                raise
    raise ApiError(404, "not_found", f"no project, mix or sound {object_id} (of this API key)")


def download_main(argv: list[str]) -> int:
    parser = _parser("download", "Download a completed mix.")
    parser.add_argument("mix", help="mix id")
    parser.add_argument("-o", "--output", type=Path, default=None, help="file (default: mix-ID.FORMAT)")
    args = parser.parse_args(argv)

    def body() -> int:
        with _client(args) as client:
            output = args.output
            if output is None:
                output = Path(f"mix-{args.mix}.{client.mix_status(args.mix).output_format}")
            client.download_mix(args.mix, output)
            print(output)
        return 0

    return _run(body)
