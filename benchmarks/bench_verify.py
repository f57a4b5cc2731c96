"""Benchmark: ``harness dataset verify`` against coreutils ``sha256sum`` on the same bytes.

What it measures
    Wall-clock time of two subprocesses that hash the same capture set:

    * ``harness dataset verify MANIFEST`` (threads, hashlib; by default one thread per core), and
      ``harness dataset verify MANIFEST --jobs 1`` (one thread), to show what parallelism buys;
    * ``sha256sum FILE...`` (coreutils, one process, one core).

    The capture set is synthetic: by default 8 files of slightly different sizes totalling
    1 GiB of seeded pseudo-random bytes, in a temporary folder laid out like a registered dataset
    (``manifests/``, ``checksums/``, ``captures/``) so that ``verify`` finds the checksum sheet
    by convention. The files are not valid HDF5; ``verify`` only hashes bytes.

    The page cache is warmed first and every command runs once untimed, so the timed runs read
    from memory and measure hashing, not the disk. The commands alternate within each repeat
    (verify, sha256sum, verify --jobs 1, ...) so that a drift of the machine's speed affects all
    of them alike. The figures are the medians; the goal is ``verify`` taking at most 0.6 of
    ``sha256sum``'s time.

How to run
    . .venv/bin/activate
    python benchmarks/bench_verify.py              # 8 files, 1 GiB, 5 repeats (about a minute)
    python benchmarks/bench_verify.py --json       # the same, as one JSON object on stdout
    python benchmarks/bench_verify.py --small --files 3 --total-mib 48 --repeats 2  # smoke run

Progress goes to stderr; the results go to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.datasets.checksums import build_sheet
from harness.datasets.manifest import Entry, new_manifest
from harness.datasets.registry import sheet_beside

MIB = 1 << 20
CHUNK = 8 * MIB  # generate and write in chunks so memory stays small whatever the file size
MIN_FILES = 8
MIN_TOTAL_MIB = 1024
GOAL_RATIO = 0.6
DATASET = "bench_verify"
HARNESS = Path(sys.executable).parent / "harness"  # the console script of this virtualenv
LABELS = {
    "verify": "harness dataset verify MANIFEST",
    "sha256sum": "sha256sum FILE...",
    "verify_jobs1": "harness dataset verify MANIFEST --jobs 1",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time 'harness dataset verify' against coreutils 'sha256sum'."
    )
    parser.add_argument("--files", type=int, default=MIN_FILES, help="capture files (default 8)")
    parser.add_argument(
        "--total-mib", type=int, default=MIN_TOTAL_MIB, help="total size in MiB (default 1024)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each command")
    parser.add_argument("--seed", type=int, default=0, help="seed of the file contents")
    parser.add_argument(
        "--small",
        action="store_true",
        help=f"allow fewer than {MIN_FILES} files or {MIN_TOTAL_MIB} MiB "
        "(quick smoke run; the figures then mean little)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    if args.files < 1 or args.total_mib < 1 or args.repeats < 1:
        parser.error("--files, --total-mib and --repeats must be at least 1")
    if args.total_mib * MIB < args.files:
        parser.error("--total-mib is too small for that many files")
    # Small sets are dominated by start-up costs (Python imports), so refuse them by accident.
    if not args.small and (args.files < MIN_FILES or args.total_mib < MIN_TOTAL_MIB):
        parser.error(
            f"need at least {MIN_FILES} files and {MIN_TOTAL_MIB} MiB "
            "(pass --small for a smoke run)"
        )
    return args


def file_sizes(n_files: int, total: int) -> list[int]:
    """Sizes from 0.75x to 1.25x of the mean, summing to ``total``.

    Unequal sizes keep the benchmark honest about thread scheduling: equal files would let the
    threads finish together for free.
    """
    weights = [1.0] if n_files == 1 else [0.75 + 0.5 * i / (n_files - 1) for i in range(n_files)]
    scale = total / sum(weights)
    sizes = [int(w * scale) for w in weights]
    sizes[-1] += total - sum(sizes)
    return sizes


def write_random_file(path: Path, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        remaining = size
        while remaining:
            n = min(CHUNK, remaining)
            fh.write(rng.bytes(n))
            remaining -= n


def build_dataset(root: Path, n_files: int, total: int, seed: int) -> tuple[Path, list[Path]]:
    """Captures, manifest and checksum sheet under ``root``, in the registry's layout."""
    captures = root / "captures" / DATASET
    captures.mkdir(parents=True)
    (root / "manifests").mkdir()
    manifest = new_manifest(
        root / "manifests" / f"{DATASET}.json",
        DATASET,
        "CartPole-v1",
        captures,
        description="synthetic capture set of bench_verify.py",
    )
    paths = []
    for i, size in enumerate(file_sizes(n_files, total)):
        name = f"capture_{i:03d}.h5"
        # One seed per file, so that no two files share contents.
        write_random_file(captures / name, size, seed * 1_000_003 + i)
        paths.append(captures / name)
        manifest.entries.append(
            Entry(
                id=f"capture_{i:03d}",
                path=name,
                status="accepted",
                episodes=0,
                steps=0,
                demonstrator={"name": "synthetic"},
                reason="benchmark",
            )
        )
        log(f"  wrote {name}: {size / MIB:.1f} MiB")
    manifest.save()
    sheet_path = sheet_beside(manifest.path)
    sheet_path.parent.mkdir()
    build_sheet(manifest, sheet_path).save()
    return manifest.path, paths


def warm_cache(paths: list[Path]) -> None:
    """Read every file once so that all timed runs read from the page cache, not the disk."""
    buffer = bytearray(CHUNK)
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while fh.readinto(buffer):
                pass


def run(cmd: list[str], *, capture_stdout: bool = False) -> tuple[float, str]:
    """Wall-clock seconds of ``cmd``; exits with its output when it does not exit 0."""
    stdout = subprocess.PIPE if capture_stdout else subprocess.DEVNULL
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(
            f"bench_verify: {' '.join(cmd)} exited {proc.returncode}\n"
            f"{proc.stdout or ''}{proc.stderr}"
        )
    return elapsed, proc.stdout or ""


def check_sha256sum_agrees(sheet_path: Path, paths: list[Path]) -> None:
    """Both tools must hash the same bytes to the same digests, or the race means nothing."""
    _, out = run(["sha256sum", *map(str, paths)], capture_stdout=True)
    found = {
        Path(line.split(maxsplit=1)[1].lstrip("*")).name: line.split()[0]
        for line in out.splitlines()
    }
    sheet = json.loads(sheet_path.read_text())["entries"]
    expected = {e["path"]: e["sha256"] for e in sheet.values()}
    if found != expected:
        sys.exit("bench_verify: sha256sum and the checksum sheet disagree")


def machine_info() -> dict[str, Any]:
    version = subprocess.run(
        ["sha256sum", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,  # hashlib's sha256 comes from OpenSSL
        "sha256sum": version[0] if version else "unknown",
    }


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    total = args.total_mib * MIB
    with tempfile.TemporaryDirectory(prefix="bench_verify_") as tmp:
        root = Path(tmp)
        log(f"building {args.files} files, {args.total_mib} MiB in {root}")
        start = time.perf_counter()
        manifest_path, paths = build_dataset(root, args.files, total, args.seed)
        log(f"built the capture set, manifest and sheet in {time.perf_counter() - start:.1f} s")

        warm_cache(paths)
        log("page cache warmed: every file read once; the timed runs read from memory")

        # Same files in the same order for both tools; verify hashes only accepted captures.
        commands = {
            "verify": [str(HARNESS), "dataset", "verify", str(manifest_path)],
            "sha256sum": ["sha256sum", *map(str, paths)],
            "verify_jobs1": [str(HARNESS), "dataset", "verify", str(manifest_path), "--jobs", "1"],
        }
        # Untimed warm-up: imports, .pyc files and the binaries are cached before timing starts.
        for cmd in commands.values():
            run(cmd)
        check_sha256sum_agrees(sheet_beside(manifest_path), paths)
        log("warm-up: each command ran once untimed; sha256sum agrees with the sheet")

        times: dict[str, list[float]] = {name: [] for name in commands}
        for r in range(args.repeats):
            for name, cmd in commands.items():
                times[name].append(run(cmd)[0])
            log(
                f"  repeat {r + 1}/{args.repeats}: "
                + ", ".join(f"{name} {t[-1]:.3f} s" for name, t in times.items())
            )

    medians = {name: statistics.median(t) for name, t in times.items()}
    ratio = medians["verify"] / medians["sha256sum"]
    return {
        "machine": machine_info(),
        "data": {
            "files": args.files,
            "total_bytes": total,
            "total_mib": args.total_mib,
            "page_cache_warmed": True,
            "seed": args.seed,
            "small": args.small,
        },
        "repeats": args.repeats,
        "commands": LABELS,
        "times_s": times,
        "median_s": medians,
        "throughput_mib_s": {name: args.total_mib / m for name, m in medians.items()},
        "ratio_verify_to_sha256sum": ratio,
        "ratio_verify_jobs1_to_sha256sum": medians["verify_jobs1"] / medians["sha256sum"],
        "speedup_of_threads": medians["verify_jobs1"] / medians["verify"],
        "goal": {"max_ratio": GOAL_RATIO, "met": ratio <= GOAL_RATIO},
    }


def print_report(res: dict[str, Any]) -> None:
    m, d = res["machine"], res["data"]
    print(
        f"machine: {m['cpu_count']} cpu(s), {m['platform']}, Python {m['python']}, "
        f"{m['openssl']}, {m['sha256sum']}"
    )
    print(
        f"data: {d['files']} files, {d['total_mib']} MiB ({d['total_bytes']:,} bytes), "
        "page cache warmed (all runs read from memory)"
    )
    print(f"runs: {res['repeats']} of each, alternating, after one untimed warm-up run each")
    for name, label in LABELS.items():
        runs = " ".join(f"{t:.3f}" for t in res["times_s"][name])
        print(
            f"  {label:40} runs [s]: {runs}  median {res['median_s'][name]:.3f} s "
            f"({res['throughput_mib_s'][name]:.0f} MiB/s)"
        )
    print(f"ratio verify / sha256sum (lower is better): {res['ratio_verify_to_sha256sum']:.3f}")
    print(
        f"ratio verify --jobs 1 / sha256sum: {res['ratio_verify_jobs1_to_sha256sum']:.3f} "
        f"(threads make verify {res['speedup_of_threads']:.2f}x faster than one thread)"
    )
    goal = res["goal"]
    verdict = "MET" if goal["met"] else "NOT MET"
    print(
        f"goal: verify takes at most {goal['max_ratio']} of sha256sum's time: {verdict} "
        f"({res['ratio_verify_to_sha256sum']:.3f})"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not HARNESS.is_file():
        sys.exit(f"bench_verify: no console script {HARNESS}; run pip install -e . first")
    if shutil.which("sha256sum") is None:
        sys.exit("bench_verify: coreutils sha256sum not found")
    try:
        res = benchmark(args)
    except KeyboardInterrupt:
        # The temporary folder has already been removed by its context manager.
        log("interrupted; temporary files removed")
        return 130
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_report(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
