"""`audiomixer bench separate`: speed, overhead and memory of the chunked separation job.

Every measurement runs in its own child process, so each peak RSS (ru_maxrss of that process) is its own:
  1. the chunked job (local checkpoints, FLAC stems, checkpoints cleared) on a `--seconds` song;
  2. bare `demucs.apply.apply_model` on the same song, same model, same device (the baseline);
  3. the chunked job on a 3-minute and a 10-minute song (times `--memory-scale`), for the memory ratio.
Models: `htdemucs_ft-random` (default: htdemucs_ft's architecture with random weights, same cost as the
real one, no download), `demucs_unittest`, or any name `load_model` can find offline.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RANDOM_FT = "htdemucs_ft-random"
SR = 44_100


def _synth_song(path: Path, seconds: float, seed: int = 0) -> None:
    """A deterministic stereo 'song' written block by block (the parent stays small too)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total = int(seconds * SR)
    block = SR * 10
    with sf.SoundFile(str(path), "w", SR, 2, subtype="PCM_24", format="FLAC") as out:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / SR
            beat = (t % 0.5) < 0.06
            drums = rng.standard_normal(n) * beat * np.exp(-(t % 0.5) * 40)
            bass = np.sin(2 * np.pi * 55 * (1 + 0.5 * (np.floor(t / 2) % 2)) * t)
            lead = np.sin(2 * np.pi * 440 * (1 + 0.125 * np.floor(t * 2 % 4)) * t) * (0.5 + 0.5 * np.sin(t))
            left = 0.3 * drums + 0.25 * bass + 0.15 * lead
            right = 0.3 * drums + 0.25 * bass - 0.1 * lead
            out.write(np.clip(np.stack([left, right], axis=1), -0.99, 0.99))


def _load(name: str, repo: str | None, device: str | None) -> Any:
    from audiomixer.separation.model import build_random_htdemucs_ft, load_model

    if name == RANDOM_FT:
        return build_random_htdemucs_ft(device)
    return load_model(name, Path(repo) if repo else None, device)


def _child(args: argparse.Namespace) -> int:
    import soundfile as sf
    import torch

    from audiomixer.separation.checkpoints import LocalCheckpointStore
    from audiomixer.separation.chunked import apply_model_whole, separate_to_files
    from audiomixer.separation.model import resolve_device

    device = str(resolve_device(args.device))
    model = _load(args.model, args.repo, device)
    source = Path(args.input)
    seconds = sf.info(str(source)).duration
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    chunks = 1
    model_time = [0.0]
    if args.child == "bare":
        mix, _ = sf.read(str(source), dtype="float32", always_2d=True)
        apply_model_whole(model, mix, device=device)
    else:
        from audiomixer.separation import chunked as chunked_mod

        real_apply = chunked_mod.apply_model

        def timed_apply(*a: Any, **k: Any) -> Any:
            # Time inside the model, so the pipeline's own cost can be told apart from a busy machine.
            start = time.perf_counter()
            out = real_apply(*a, **k)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            model_time[0] += time.perf_counter() - start
            return out

        chunked_mod.apply_model = timed_apply
        with tempfile.TemporaryDirectory() as tmp:
            store = LocalCheckpointStore(Path(tmp) / "checkpoints")
            result = separate_to_files(
                source,
                Path(tmp) / "stems",
                model=model,
                model_name=args.model,
                chunk_s=args.chunk_s,
                overlap_s=args.overlap_s,
                device=device,
                store=store,
                work_dir=Path(tmp),
            )
            store.clear()
            chunks = result.chunks
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    report = {
        "mode": args.child,
        "device": device,
        "seconds": seconds,
        "wall_s": wall,
        "x_realtime": seconds / wall,
        # CPU seconds of the process: on a shared CPU machine a steadier yardstick than wall time.
        "cpu_s": cpu,
        "chunks": chunks,
        "model_s": model_time[0] if args.child == "chunked" else None,
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None,
    }
    print(json.dumps(report))
    return 0


def _run_child(mode: str, model: str, song: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "audiomixer_tools.bench.separate", "--child", mode, "--input", str(song)]
    cmd += ["--model", model, "--chunk-s", str(args.chunk_s), "--overlap-s", str(args.overlap_s)]
    if args.device:
        cmd += ["--device", args.device]
    if args.repo:
        cmd += ["--model-repo", args.repo]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audiomixer bench separate", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="song length for speed and overhead")
    p.add_argument("--model", default=RANDOM_FT, help=f"{RANDOM_FT} (default), demucs_unittest or a name")
    p.add_argument("--memory-model", default=None, help="model for the 3 vs 10 minute memory runs")
    p.add_argument("--memory-scale", type=float, default=1.0, help="scale the 3/10-minute lengths (CPU)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    p.add_argument("--model-repo", dest="repo", default=None, help="DEMUCS_REPO for a named model")
    p.add_argument("--repo", dest="repo", help=argparse.SUPPRESS)  # the old name; remix says --model-repo
    p.add_argument("--chunk-s", type=float, default=30.0)
    p.add_argument("--overlap-s", type=float, default=1.0)
    p.add_argument("--child", choices=["chunked", "bare"], help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        return _child(args)
    with tempfile.TemporaryDirectory(prefix="bench-separate-") as tmp:
        if not args.skip_speed:
            song = Path(tmp) / "song.flac"
            _synth_song(song, args.seconds)
            chunked = _run_child("chunked", args.model, song, args)
            bare = _run_child("bare", args.model, song, args)
            print(
                f"model {args.model} on {chunked['device']}, {args.seconds:g} s song, "
                f"chunk {args.chunk_s:g} s"
            )
            for r in (chunked, bare):
                print(
                    f"  {r['mode']:8s} wall {r['wall_s']:8.2f} s  speed {r['x_realtime']:7.2f}x real time  "
                    f"CPU {r['cpu_s']:8.1f} s  peak RSS {r['peak_rss_mb']:7.0f} MB"
                    + (f"  peak CUDA {r['cuda_peak_mb']:.0f} MB" if r["cuda_peak_mb"] is not None else "")
                    + (f"  ({r['chunks']} chunks)" if r["mode"] == "chunked" else "")
                )
            ratio = chunked["wall_s"] / bare["wall_s"]
            cpu_ratio = chunked["cpu_s"] / bare["cpu_s"]
            print(f"  overhead chunked/bare: {ratio:.3f}x wall, {cpu_ratio:.3f}x CPU time (goal <= 1.05x)")
            outside = chunked["wall_s"] / chunked["model_s"]
            print(f"  chunked job wall / its time inside apply_model: {outside:.3f}x")
        if not args.skip_memory:
            mem_model = args.memory_model or args.model
            runs = []
            for minutes in (3, 10):
                seconds = minutes * 60 * args.memory_scale
                song = Path(tmp) / f"song-{minutes}.flac"
                _synth_song(song, seconds, seed=minutes)
                runs.append(_run_child("chunked", mem_model, song, args))
                song.unlink()
            short, long = runs
            print(f"memory, model {mem_model} on {short['device']} (chunked job, peak RSS of its process):")
            for r in runs:
                print(
                    f"  {r['seconds']:7.1f} s song: peak RSS {r['peak_rss_mb']:7.0f} MB, "
                    f"wall {r['wall_s']:.1f} s"
                )
            print(f"  ratio long/short: {long['peak_rss_mb'] / short['peak_rss_mb']:.3f}x (goal <= 1.3x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
