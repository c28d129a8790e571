"""``spad analyze``: per-particle results, classification and reports."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from spad.app import memory, safe_output
from spad.app.safe_output import check_folder
from spad.app.summary import particle_summary
from spad.errors import SpadError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze", help="analyse particle files: g2, lifetimes, blinking, spectrum, verdict",
        description="Analyse one or more particle recordings and classify each particle as "
                    "monomer or dimer. A file that fails is reported and the rest go on.")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="time-tag files (PTU, PT3, HT3, Photon-HDF5 particle files)")
    p.add_argument("--spectrum", action="append", metavar="FILE", default=None,
                   help="spectrum file (.sif, .spe, .csv, particle .h5); give one per FILE, in "
                        "order, or one for a single FILE. Default: the particle file's own")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per particle per line instead of a summary")
    p.add_argument("--report", metavar="DIR", type=Path,
                   help="write a PNG per particle, population.csv and population.png to DIR")
    p.add_argument("--save", action="store_true",
                   help="store each particle's results in /user/analysis of its file "
                        "(PTU/PT3/HT3 recordings: in the FILE.user.h5 sidecar)")
    p.add_argument("--reference-ev", type=float, metavar="EV",
                   help="monomer reference peak energy (default: the session's monomers)")
    p.add_argument("--gate-ns", type=float, default=5.0,
                   help="time gate after the pulse for the gated g2(0) (default 5 ns)")
    p.add_argument("--delay-ns", type=float, metavar="NS",
                   help="delay of detector B behind detector A (cable delays), if known: g2(0) "
                        "is read at the coincidence peak nearest it (default: the peak that "
                        "stands out within ±4 periods, else the one nearest 0)")
    p.add_argument("--bin-ms", type=float, default=10.0,
                   help="intensity trace bin width (default 10 ms)")
    p.add_argument("--irf", metavar="FILE", help="measured IRF recording (time-tag file)")
    p.add_argument("--roi", metavar="START:END",
                   help="region of interest in seconds on the recording's clock (e.g. 0:25, "
                        "5: or :20); default: all of it, ending where a bleached tail begins")
    p.add_argument("--no-auto-roi", dest="auto_roi", action="store_false",
                   help="keep a bleached or dead tail (do not end the ROI automatically)")
    p.add_argument("--keep-bursts", dest="remove_bursts", action="store_false",
                   help="keep photon bursts (short spikes far above the emitter's levels)")
    p.add_argument("--detectors", type=int, nargs=2, default=None, metavar=("A", "B"),
                   help="the two HBT detectors (default 1 2, or where either recorded nothing "
                        "at the start of the file the two channels that recorded the most, "
                        "with a note; 0 is the sync input, for a PicoHarp in T2 with a "
                        "detector on it: then g2 is g2(τ), no lifetime)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask cluster at ADDRESS (e.g. tcp://host:8786) instead")
    # collection held until the first particle is analysed (spad.app.memory.hold_collection)
    p.set_defaults(func=run, collect_late=True)


def check_ranges(gate_ns: float, bin_ms: float, reference_ev: float | None) -> None:
    """Refuse impossible values of the analysis options before any work, with their range:
    a gate within a laser period; trace bins from 10 us (a finer trace of an hour would not
    fit in memory) to 100 s; a reference peak energy a quantum dot can emit."""
    from spad.app.safe_output import check_range

    check_range("--gate-ns", gate_ns, 0.0, 1e6, "ns")
    check_range("--bin-ms", bin_ms, 0.01, 1e5, "ms")
    check_range("--reference-ev", reference_ev, 1.0, 4.0,
                "eV (the photon energy of a quantum dot's emission)")


def settings_from(args: argparse.Namespace) -> Any:
    """The analysis settings of ``spad analyze``'s options
    (:meth:`spad.analysis.settings.AnalysisSettings.from_user`)."""
    from spad.analysis.settings import AnalysisSettings

    check_ranges(args.gate_ns, args.bin_ms, getattr(args, "reference_ev", None))
    return AnalysisSettings.from_user(
        gate_ns=args.gate_ns, bin_ms=args.bin_ms, detectors=args.detectors,
        delay_ns=args.delay_ns, roi=args.roi, auto_roi=args.auto_roi,
        remove_bursts=args.remove_bursts, irf=args.irf)


def _one(path: str, spectrum: str | None, settings: Any) -> Any:
    """Analyse one file in a worker; errors come back as text so the batch goes on."""
    from spad.analysis.particle import analyze_particle

    try:
        result = analyze_particle(path, settings, spectrum=spectrum)
        if not settings.auto_detectors and not result.photons.n_photons:
            a, b = settings.detectors
            return (f"{path}: no photons on --detectors {a} {b} (spad info {path} lists the "
                    "detectors that recorded)")
        return result
    except (SpadError, ValueError, OSError) as exc:
        text = str(exc)
        return text if text.startswith(str(path)) else f"{path}: {text}"


def _in_process(args: argparse.Namespace, jobs: list[tuple[str, str | None]]) -> bool:
    """Whether the jobs run in this process (one job, or ``--jobs 1``), not in workers."""
    return args.jobs <= 1 or len(jobs) == 1


@contextlib.contextmanager
def _mapped(func: Callable[..., Any], jobs: list[tuple[str, str | None]], settings: Any,
            args: argparse.Namespace) -> Iterator[Iterable[Any]]:
    """``func`` over the jobs, in order: in this process, in worker processes, or on Dask.

    Workers are always shut down when the block ends; on an error or an interruption they are
    terminated rather than waited for.
    """
    paths, spectra = [j[0] for j in jobs], [j[1] for j in jobs]
    if args.scheduler:
        from dask.distributed import Client

        from spad.app.batch import check_scheduler

        check_scheduler(args.scheduler)
        try:
            client = Client(args.scheduler, timeout=10)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SpadError(f"{args.scheduler}: no Dask scheduler answers ({exc})") from None
        try:
            futures = client.map(func, paths, spectra, [settings] * len(jobs), pure=False)
            yield (f.result() for f in futures)
        finally:
            client.close()
        return
    if _in_process(args, jobs):
        yield (func(p, s, settings) for p, s in jobs)
        return
    # imported here: multiprocessing costs every spad command (all build this parser) ~7 ms
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=min(args.jobs, len(jobs)),
                               initializer=safe_output.worker_init)
    abort = True
    try:
        with safe_output.signals_held():   # map submits every job: the workers start here
            results = pool.map(func, paths, spectra, [settings] * len(jobs), chunksize=1)
        yield results
        abort = False
    finally:
        safe_output.shutdown_pool(pool, abort)


def _progress_bar(n_files: int) -> Any:
    """A tqdm bar over more than three files (on a terminal), else None: tqdm is imported only
    where it may show."""
    if n_files <= 3:
        return contextlib.nullcontext(None)
    from tqdm import tqdm

    return tqdm(total=n_files, unit="file", disable=None, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    files = [str(f) for f in args.files]
    spectra: list[str | None]
    if args.spectrum is None:
        spectra = [None] * len(files)
    elif len(args.spectrum) == len(files):
        spectra = list(args.spectrum)
    else:
        raise SpadError(f"--spectrum given {len(args.spectrum)} times for {len(files)} files: "
                        "give one per file, in order")
    settings = settings_from(args)
    jobs = list(zip(files, spectra, strict=True))
    if args.jobs < 1:
        raise SpadError(f"--jobs must be at least 1, not {args.jobs}")
    if args.report is not None:
        check_folder(args.report)  # fail before the work, not after
    warm_up: Any = contextlib.nullcontext()
    if not args.scheduler:   # a Dask cluster's workers compile their own
        from spad.analysis.kernels_warmup import compiling_kernels

        # the first run after an install compiles on two cores; worker processes would each
        # compile what is missing, so for them it is done before they start
        warm_up = compiling_kernels(ahead=not _in_process(args, jobs))
    results, failed = [], 0
    with warm_up:
        from spad.analysis.particle import classify_session

        if not _in_process(args, jobs):
            memory.resume_collection()   # forked workers would inherit the hold
        with _progress_bar(len(jobs)) as bar, _mapped(_one, jobs, settings, args) as outs:
            for out in outs:
                memory.resume_collection()   # the first particle ends the start-up
                if bar is not None:
                    bar.update()
                if isinstance(out, str):
                    failed += 1
                    (print if bar is None else bar.write)(f"spad: error: {out}",
                                                          file=sys.stderr)
                else:
                    results.append(out)
    if not results:  # nothing usable: that is bad input, not a partial batch
        return safe_output.EXIT_USAGE
    classify_session(results, args.reference_ev)
    records = [r.record() for r in results]
    for rec in records:
        print(json.dumps(rec) if args.json else particle_summary(rec), flush=True)
    if args.save:
        from spad.analysis.particle import save_result

        for r in results:
            save_result(r)
    if args.report is not None:
        from spad.app.report import write_report

        write_report(args.report, results, records)
        print(f"report written to {args.report}/", file=sys.stderr)
    return safe_output.EXIT_SOME_FAILED if failed else safe_output.EXIT_OK
