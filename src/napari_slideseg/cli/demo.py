"""``slideseg demo``: run the main job on the bundled sample slide."""

from __future__ import annotations

import argparse

from .common import add_shared, drive

NAME = "demo"
HELP = "run the main job on the bundled sample slide"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``slideseg demo``.

    Parameters
    ----------
    p
        The command's parser.
    """
    p.add_argument("--out", default="slideseg-demo", help="output folder (default: slideseg-demo)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    add_shared(p, "--quiet")


def run(args: argparse.Namespace) -> int:
    """Run the demo and print its steps, timings and outputs.

    Parameters
    ----------
    args
        The parsed command line.

    Returns
    -------
    int
        The exit status (0).
    """
    from ..demo import run_demo_steps

    res = drive(run_demo_steps(args.out, device=args.device), quiet=args.quiet)
    print(f"sample slide: {res['slide']!r}")
    print("steps:")
    for step, sec in res["timings"]:
        print(f"  {step:<66} {sec:7.2f} s")
    print(f"{res['n_nuclei']} nuclei; outputs in {res['out'].resolve()}:")
    for p in res["files"]:
        print(f"  {p.name}")
    for note in res.get("notes", []):
        print(note)
    return 0
