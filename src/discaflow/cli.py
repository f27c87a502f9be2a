"""The discaflow command: one subcommand per pipeline stage.

Expected problems with the input (:class:`discaflow.errors.InputError`) print one line,
``discaflow: error: <file or key>: <what is wrong and what to do>``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from discaflow import __version__
from discaflow.disca import config as disca_config
from discaflow.errors import InputError


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as the one-line InputError every stage uses (exit 2, no usage dump)."""

    def error(self, message):
        raise InputError(f"{message} (see {self.prog} --help)")


def _checked_type(prop: dict, name: str):
    """An argparse type that converts a value to the JSON-schema ``prop``'s integer or number and
    checks it against ``prop`` (bounds; finite)."""
    import math

    import jsonschema

    types = prop.get("type") if isinstance(prop.get("type"), list) else [prop.get("type")]
    conv = int if "integer" in types else float
    validator = jsonschema.Draft202012Validator(prop)

    def parse(text: str):
        try:
            value = conv(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if conv is int else 'a number'}") from None
        if conv is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        err = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if err is not None:
            raise argparse.ArgumentTypeError(err.message)
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def _schema_type(section: str, key: str, *sub: str):
    """The type of the configuration schema's property ``section[.sub].key``: a constraint is declared
    once, in the schema, for the config and the CLI."""
    from discaflow.config import schema_section

    prop = schema_section(section, *sub)["properties"][key]
    return _checked_type({k: v for k, v in prop.items() if k not in ("default", "description")}, key)


def _at_least(lo: int):
    return _checked_type({"type": "integer", "minimum": lo}, f"integer >= {lo}")


def _add_imaging_args(p: argparse.ArgumentParser) -> None:
    from discaflow.config import stage_defaults

    d, im = stage_defaults("simulation"), stage_defaults("simulation", "imaging")
    g = p.add_argument_group("structures and imaging")
    g.add_argument("--structures", nargs="+", required=True, metavar="FILE",
                   help="density maps (MRC) or atomic models (PDB/mmCIF), one class each")
    g.add_argument("--names", nargs="+", metavar="NAME", help="class names (default: file stems)")
    g.add_argument("--no-assembly", action="store_true", help="atomic models: use the deposited chains, not the biological assembly")
    g.add_argument("--voxel-size-A", type=_schema_type("simulation", "voxel_size_A"), required=True, help="voxel size of the output in Å")
    g.add_argument("--box-vox", type=_schema_type("simulation", "box_vox"), default=d["box_vox"], help="subtomogram box edge in voxels (sets the SNR reference box)")
    g.add_argument("--snr", type=_schema_type("simulation", "snr"), default=d["snr"], help="signal variance / noise variance (paper: 0.1 … 0.001)")
    g.add_argument("--snr-convention", choices=["final_volume", "paper"], default=d["snr_convention"],
                   help="final_volume: --snr holds in the written volumes; paper: the DISCA paper's recipe (README, The simulator)")
    g.add_argument("--tilt-range-deg", nargs=2, type=float, default=(im["tilt_min_deg"], im["tilt_max_deg"]), metavar=("MIN", "MAX"))
    g.add_argument("--tilt-step-deg", type=_schema_type("simulation", "tilt_step_deg", "imaging"), default=im["tilt_step_deg"])
    g.add_argument("--defocus-um", type=_schema_type("simulation", "defocus_um", "imaging"), default=im["defocus_um"], help="negative = underfocus")
    g.add_argument("--voltage-kV", type=_schema_type("simulation", "voltage_kV", "imaging"), default=im["voltage_kV"])
    g.add_argument("--cs-mm", type=_schema_type("simulation", "cs_mm", "imaging"), default=im["cs_mm"])
    g.add_argument("--amplitude-contrast", type=_schema_type("simulation", "amplitude_contrast", "imaging"), default=im["amplitude_contrast"])
    g.add_argument("--bfactor-A2", type=_schema_type("simulation", "bfactor_A2", "imaging"), default=im["bfactor_A2"])
    g.add_argument("--seed", type=_schema_type("simulation", "seed"), default=d["seed"])


def _section(args) -> dict:
    paths = [Path(s) for s in args.structures]
    names = args.names or [p.stem for p in paths]
    if len(names) != len(paths):
        raise InputError(f"--names: {len(names)} names for {len(paths)} structures; give one name per structure")
    if len(set(names)) != len(names):
        raise InputError("--names: class names must be unique (two structures share a file stem? name them with --names)")
    return {
        "structures": dict(zip(names, map(str, paths))),
        "assembly": not args.no_assembly,
        "voxel_size_A": args.voxel_size_A, "box_vox": args.box_vox, "snr": args.snr, "snr_convention": args.snr_convention,
        "seed": args.seed,
        "imaging": {"tilt_min_deg": args.tilt_range_deg[0], "tilt_max_deg": args.tilt_range_deg[1],
                    "tilt_step_deg": args.tilt_step_deg, "voltage_kV": args.voltage_kV,
                    "defocus_um": args.defocus_um, "cs_mm": args.cs_mm,
                    "amplitude_contrast": args.amplitude_contrast, "bfactor_A2": args.bfactor_A2},
    }


def _check_imaging(args) -> None:
    if args.voxel_size_A <= 0:
        raise InputError(f"--voxel-size-A: must be > 0 Å, got {args.voxel_size_A}")
    if args.snr <= 0:
        raise InputError(f"--snr: must be > 0, got {args.snr}")
    if args.box_vox < 8:
        raise InputError(f"--box-vox: must be >= 8 voxels, got {args.box_vox}")
    lo, hi = args.tilt_range_deg
    if not (-90 < lo <= hi < 90) or args.tilt_step_deg <= 0:
        raise InputError(f"--tilt-range-deg/--tilt-step-deg: need -90 < MIN <= MAX < 90 and a step > 0, got {lo} {hi} step {args.tilt_step_deg}")


def _cmd_simulate_subtomograms(args) -> None:
    from discaflow.simulate.run import run_subtomograms

    _check_imaging(args)
    if args.per_class < 1:
        raise InputError(f"--per-class: must be >= 1, got {args.per_class}")
    section = _section(args)
    section["subtomograms"] = {"per_class": args.per_class, "max_shift_vox": args.max_shift_vox, "dtype": args.dtype}
    run_subtomograms(section, args.out, progress=not args.quiet)
    print(f"wrote {args.out}")


def _cmd_simulate_tomograms(args) -> None:
    from discaflow.datasets import tomogram_name
    from discaflow.simulate.run import run_tomogram

    _check_imaging(args)
    if any(s < 16 for s in args.shape_xyz_vox):
        raise InputError(f"--shape-xyz-vox: every edge must be >= 16 voxels, got {args.shape_xyz_vox}")
    section = _section(args)
    section["tomograms"] = {"shape_xyz_vox": args.shape_xyz_vox, "particles_per_class": args.particles_per_class,
                            "vesicles": args.vesicles, "blobs": args.blobs}
    out = Path(args.out_dir)
    for i in range(args.count):
        name = tomogram_name(i)
        run_tomogram(section, i, out / f"{name}.mrc", out / f"{name}_particles.star",
                     out / f"{name}_clean.mrc" if args.write_clean else None)
        print(f"wrote {out / (name + '.mrc')}")


def _cmd_pick(args) -> None:
    from discaflow.pick import run_pick

    settings = {"particle_radius_A": args.particle_radius_A, "sigma_ratio": args.sigma_ratio, "polarity": args.polarity,
                "threshold": args.threshold, "threshold_t": args.threshold_t, "percentile": args.percentile,
                "top_n": args.top_n, "min_distance_A": args.min_distance_A, "slab_vox": args.slab_vox}
    summary = run_pick(args.tomogram, args.out, settings, box_vox=args.box_vox, voxel_size_A=args.voxel_size_A,
                       target_voxel_size_A=args.target_voxel_size_A, mask=args.mask, threads=args.threads)
    print(f"wrote {args.out}: {summary['picked']} particles")


def _cmd_extract(args) -> None:
    from discaflow.extract import run_extract

    counts = run_extract(args.tomogram, args.picks, args.out, {"box_vox": args.box_vox, "dtype": args.dtype, "edge": args.edge},
                         voxel_size_A=args.voxel_size_A, target_voxel_size_A=args.target_voxel_size_A)
    print(f"wrote {args.out}: {counts['extracted']} subtomograms ({counts['edge']} at the edge)")


def _cmd_gather(args) -> None:
    from discaflow.extract import gather_stores

    summary = gather_stores(args.stores, args.out, dataset=args.dataset)
    print(f"wrote {args.out}: {summary['n']} subtomograms from {summary['tomograms']} tomograms")


def _cmd_disca(args) -> int:
    from discaflow.disca import Disca, Interrupted, export_result
    from discaflow.disca.config import from_arguments

    from discaflow.io.atomic import check_writable_dir

    em = Disca(config=from_arguments(args))
    check_writable_dir(args.state_dir, "--state-dir")
    if args.out:
        check_writable_dir(args.out, "--out")  # before training, not after it
    try:
        em.fit(args.store, args.state_dir, max_new_iterations=args.iterations, init_from=args.init_from)
    except Interrupted:
        print(f"discaflow: stopped by a signal; rerun the same command to resume from {args.state_dir}", file=sys.stderr)
        return 143
    if not hasattr(em, "labels_"):
        print(f"{args.state_dir}: ran {args.iterations} iteration(s); rerun to continue")
        return 0
    print(f"DISCA finished: K = {em.n_clusters_}, best iteration {em.best_iteration_} (DDBI {em.ddbi_:.4f})")
    if args.out:
        summary = export_result(args.state_dir, args.store, args.out)
        print(f"wrote {args.out}: labels.csv, labels.star, features.h5, bundle/ (K = {summary['k']})")
    return 0


def _cmd_predict(args) -> None:
    from discaflow.bundle import run_predict

    table, k = run_predict(args.store, args.bundle, [args.out])
    print(f"wrote {args.out}: {len(table)} subtomograms in {k} classes")


def _average_settings(args) -> dict:
    lo, hi = args.tilt_range
    if not args.no_wedge and not (-90 < lo <= 0 <= hi < 90):
        raise InputError(f"--tilt-range: need -90 < MIN <= 0 <= MAX < 90 degrees, got {lo:g} {hi:g}")
    return {"iterations": args.iterations, "global_iterations": args.global_iterations,
            "global_step_deg": args.global_step_deg, "local_step_deg": args.local_step_deg,
            "max_shift_vox": args.max_shift_vox, "tilt_min_deg": None if args.no_wedge else args.tilt_range[0],
            "tilt_max_deg": None if args.no_wedge else args.tilt_range[1], "seed": args.seed}


def _cmd_average(args) -> None:
    from discaflow.average import check_average_inputs
    from discaflow.io.atomic import exclusive_lock

    settings = _average_settings(args)
    classes = sorted(check_average_inputs(args.store, args.labels, args.classes))  # all checked before any is written
    args.tilt_ranges = None
    if args.sheet:
        from discaflow.io.sheets import read_sheet, tilt_ranges

        args.tilt_ranges = tilt_ranges(read_sheet(args.sheet))
    with exclusive_lock(args.out_dir, "--out-dir"):
        _average_classes(args, classes, settings)


def _average_classes(args, classes, settings) -> None:
    from discaflow.average import collect_averages, run_average_class

    dirs = {}
    for c in classes:
        dirs[c] = Path(args.out_dir) / f"class_{c:02d}"
        s = run_average_class(args.store, args.labels, c, dirs[c], settings, tilt_ranges=args.tilt_ranges)
        print(f"class {c}: {s['particles']} particles, FSC 0.143 at {s['resolution_fsc0143_A']:.1f} Å "
              f"(0.5: {s['resolution_fsc05_A']:.1f} Å)")
    collect_averages(dirs, Path(args.out_dir))


def _tomogram_arg(values) -> dict:
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            name, path = Path(v).stem, v
        out[name] = path
    return out


def _cmd_export(args) -> None:
    from discaflow.export import run_export
    from discaflow.io.slabs import SlabReader

    sizes = {name: SlabReader(path).shape[::-1] for name, path in _tomogram_arg(args.tomograms).items()}
    r = run_export(args.store, args.labels, args.poses, sizes, args.out_dir,
                   {"micrograph_suffix": args.micrograph_suffix, "voltage_kV": args.voltage_kV})
    print(f"exported {r['particles']} particles of {r['classes']} classes to {args.out_dir}")


def _cmd_embed(args) -> None:
    from discaflow.embed import run_embed

    (name, path), = _tomogram_arg([args.tomogram]).items()
    averages = {int(k): v for k, v in (a.split("=", 1) for a in args.average)}
    out = Path(args.out_prefix)
    r = run_embed(path, name, args.store, args.labels, args.poses, averages, f"{out}_density.mrc", f"{out}_labels.mrc",
                  f"{out}_overlay.png", {"label_threshold": args.label_threshold}, voxel_size_A=args.voxel_size_A)
    print(f"{r['tomogram']}: embedded {r['particles']} particles into {out}_density.mrc and {out}_labels.mrc")


def _add_geometry_args(p: argparse.ArgumentParser) -> None:
    from discaflow.config import stage_defaults

    p.add_argument("--voxel-size-A", type=_schema_type("dataset", "voxel_size_A"), default=None, help="tomogram voxel size in Å (default: the MRC header)")
    p.add_argument("--target-voxel-size-A", type=_schema_type("dataset", "target_voxel_size_A"), default=None, help="extract at exactly this voxel size (block averaging, then cubic-spline resampling where no integer factor hits it); picking bins to about it")
    p.add_argument("--box-vox", type=_schema_type("extract", "box_vox"), default=stage_defaults("extract")["box_vox"],
                   help="extraction box in binned voxels (picking excludes half a box at the faces)")


def build_parser() -> argparse.ArgumentParser:
    from discaflow.config import stage_defaults

    parser = _Parser(prog="discaflow", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"discaflow {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    sim = stages.add_parser("simulate", help="simulate labelled subtomograms or whole tomograms with ground truth")
    kinds = sim.add_subparsers(dest="kind", required=True, metavar="KIND")
    st = kinds.add_parser("subtomograms", help="a labelled subtomogram set (HDF5 store)")
    _add_imaging_args(st)
    d = stage_defaults("simulation", "subtomograms")
    st.add_argument("--per-class", type=_schema_type("simulation", "per_class", "subtomograms"), default=d["per_class"], help="subtomograms per structure")
    st.add_argument("--max-shift-vox", type=_schema_type("simulation", "max_shift_vox", "subtomograms"), default=d["max_shift_vox"], help="largest random shift from the box centre (voxels)")
    st.add_argument("--dtype", choices=["float16", "float32"], default=d["dtype"])
    st.add_argument("--quiet", action="store_true", help="no progress bar")
    st.add_argument("--out", required=True, help="output store (.h5)")
    st.set_defaults(func=_cmd_simulate_subtomograms)

    tm = kinds.add_parser("tomograms", help="whole tomograms (MRC) with ground-truth particle tables (STAR)")
    _add_imaging_args(tm)
    d = stage_defaults("simulation", "tomograms")
    tm.add_argument("--count", type=_at_least(1), default=1, help="tomograms to write (the workflow's default is the config's count)")
    tm.add_argument("--shape-xyz-vox", nargs=3, type=_at_least(16), default=d["shape_xyz_vox"], metavar=("X", "Y", "Z"))
    tm.add_argument("--particles-per-class", type=_schema_type("simulation", "particles_per_class", "tomograms"), default=d["particles_per_class"])
    tm.add_argument("--vesicles", type=_schema_type("simulation", "vesicles", "tomograms"), default=d["vesicles"], help="membrane vesicles (distractors)")
    tm.add_argument("--blobs", type=_schema_type("simulation", "blobs", "tomograms"), default=d["blobs"], help="small dense blobs (distractors)")
    tm.add_argument("--write-clean", action="store_true", help="also write the noise-free density")
    tm.add_argument("--out-dir", required=True)
    tm.set_defaults(func=_cmd_simulate_tomograms)

    pk = stages.add_parser("pick", help="template-free DoG picking of one tomogram -> STAR")
    pk.add_argument("tomogram", help="MRC/.rec tomogram")
    _add_geometry_args(pk)
    d = stage_defaults("pick")  # defaults: the configuration schema's pick section (config/README.md)
    pk.add_argument("--particle-radius-A", type=_schema_type("pick", "particle_radius_A"), default=d["particle_radius_A"], help="sets σ1 (at least 2 binned voxels)")
    pk.add_argument("--sigma-ratio", type=_schema_type("pick", "sigma_ratio"), default=d["sigma_ratio"], help="σ2 / σ1")
    pk.add_argument("--polarity", choices=["dark", "bright"], default=d["polarity"], help="dark: raw tomograms; bright: inverted")
    pk.add_argument("--threshold", choices=["reference", "percentile", "none"], default=d["threshold"])
    pk.add_argument("--threshold-t", type=_schema_type("pick", "threshold_t"), default=d["threshold_t"], help="reference rule T = m + t (M - m) / 20")
    pk.add_argument("--percentile", type=_schema_type("pick", "percentile"), default=d["percentile"], help="percentile mode: keep peaks above this percentile")
    pk.add_argument("--top-n", type=_schema_type("pick", "top_n"), default=d["top_n"], help="keep at most this many picks (strongest first)")
    pk.add_argument("--min-distance-A", type=_schema_type("pick", "min_distance_A"), default=d["min_distance_A"], help="non-maximum suppression distance (default: the radius)")
    pk.add_argument("--mask", default=None, help="MRC mask on the tomogram's (or binned) grid; picks only where > 0.5")
    pk.add_argument("--slab-vox", type=_schema_type("pick", "slab_vox"), default=d["slab_vox"], help="binned z rows streamed per block (sets peak memory, not the result)")
    pk.add_argument("--threads", type=_at_least(1), default=2)
    pk.add_argument("--out", required=True, help="output STAR file")
    pk.set_defaults(func=_cmd_pick)

    ex = stages.add_parser("extract", help="extract subtomograms at picked positions -> HDF5 store")
    ex.add_argument("tomogram")
    ex.add_argument("picks", help="STAR particle table (rlnCoordinateX/Y/Z in unbinned pixels)")
    _add_geometry_args(ex)
    d = stage_defaults("extract")
    ex.add_argument("--dtype", choices=["float16", "float32"], default=d["dtype"])
    ex.add_argument("--edge", choices=["skip", "pad"], default=d["edge"], help="boxes crossing the tomogram edge")
    ex.add_argument("--out", required=True, help="output store (.h5)")
    ex.set_defaults(func=_cmd_extract)

    ga = stages.add_parser("gather", help="merge per-tomogram stores into one dataset store")
    ga.add_argument("stores", nargs="+")
    ga.add_argument("--dataset", default="dataset", help="dataset name recorded in the store")
    ga.add_argument("--out", required=True)
    ga.set_defaults(func=_cmd_gather)

    dc = stages.add_parser("disca", help="DISCA: YOPO features + Gaussian mixtures, iterated (checkpointed, resumable)")
    dc.add_argument("store", help="subtomogram store (.h5)")
    dc.add_argument("--state-dir", required=True, help="per-iteration checkpoints; rerun with the same directory to resume")
    dc.add_argument("--out", default=None, help="when finished, write labels, features and the model bundle here")
    dc.add_argument("--iterations", type=_at_least(1), default=None, help="run at most this many iterations now (default: to the end)")
    dc.add_argument("--init-from", default=None, help="fine-tune: start from this model bundle's network")
    disca_config.add_arguments(dc)
    dc.set_defaults(func=_cmd_disca)

    pr = stages.add_parser("predict", help="label a store with a trained model bundle (no training)")
    pr.add_argument("store")
    pr.add_argument("--bundle", required=True, help="bundle directory written by discaflow disca --out")
    pr.add_argument("--out", required=True, help="labels (.csv or .star)")
    pr.set_defaults(func=_cmd_predict)

    av = stages.add_parser("average", help="align and average each class (gold-standard FSC)")
    av.add_argument("store")
    av.add_argument("labels", help="labels.csv written by disca or predict")
    av.add_argument("--classes", type=_at_least(1), nargs="+", default=None, help="class numbers (default: all)")
    d = stage_defaults("average")  # the configuration schema's average section is where defaults are written
    av.add_argument("--iterations", type=_schema_type("average", "iterations"), default=d["iterations"], help="refinement iterations")
    av.add_argument("--global-iterations", type=_schema_type("average", "global_iterations"), default=d["global_iterations"], help="iterations that search all of SO(3)")
    av.add_argument("--global-step-deg", type=_schema_type("average", "global_step_deg"), default=d["global_step_deg"])
    av.add_argument("--local-step-deg", type=_schema_type("average", "local_step_deg"), default=d["local_step_deg"])
    av.add_argument("--max-shift-vox", type=_schema_type("average", "max_shift_vox"), default=d["max_shift_vox"])
    av.add_argument("--tilt-range", type=float, nargs=2, default=[d["tilt_min_deg"], d["tilt_max_deg"]], metavar=("MIN", "MAX"),
                    help="tilt range of the data in degrees (missing wedge, tilt axis y)")
    av.add_argument("--no-wedge", action="store_true", help="no missing-wedge compensation")
    av.add_argument("--sheet", default=None, help="tomogram sheet (TSV or RELION 5 tomograms.star): each tomogram's own tilt "
                    "range where it gives one")
    av.add_argument("--seed", type=_schema_type("average", "seed"), default=d["seed"])
    av.add_argument("--out-dir", required=True)
    av.set_defaults(func=_cmd_average)

    em = stages.add_parser("embed", help="paste class averages back into one tomogram (density + label MRC, PNG)")
    em.add_argument("tomogram", help="NAME=PATH or PATH (name = file stem)")
    em.add_argument("--store", required=True)
    em.add_argument("--labels", required=True)
    em.add_argument("--poses", required=True, help="poses.csv written by average")
    em.add_argument("--average", nargs="+", required=True, metavar="CLASS=MRC")
    em.add_argument("--voxel-size-A", type=_schema_type("dataset", "voxel_size_A"), default=None,
                    help="tomogram voxel size in Å (default: the MRC header)")
    em.add_argument("--label-threshold", type=_schema_type("embed", "label_threshold"), default=stage_defaults("embed")["label_threshold"],
                    help="in standard deviations of the average")
    em.add_argument("--out-prefix", required=True)
    em.set_defaults(func=_cmd_embed)

    xp = stages.add_parser("export", help="particle lists: RELION 5, Warp/RELION 3-4 STAR and CSV")
    xp.add_argument("store")
    xp.add_argument("labels")
    xp.add_argument("--poses", default=None, help="poses.csv from average (default: pick positions, no angles)")
    xp.add_argument("--tomograms", nargs="+", required=True, metavar="NAME=MRC", help="the dataset's tomograms (for their sizes)")
    d = stage_defaults("export")
    xp.add_argument("--micrograph-suffix", default=d["micrograph_suffix"], help="appended to tomogram names in rlnMicrographName (Warp)")
    xp.add_argument("--voltage-kV", type=_schema_type("export", "voltage_kV"), default=d["voltage_kV"])
    xp.add_argument("--out-dir", required=True)
    xp.set_defaults(func=_cmd_export)
    return parser


def _check_outputs(args) -> None:
    """Every stage's output path is checked before its work starts (not found unwritable at the end)."""
    from discaflow.io.atomic import check_output_file, check_writable_dir

    if getattr(args, "out", None) and args.stage != "disca":  # disca's --out is a directory (_cmd_disca)
        check_output_file(args.out, "--out")
    if getattr(args, "out_dir", None):
        check_writable_dir(args.out_dir, "--out-dir")
    if getattr(args, "out_prefix", None):
        check_output_file(f"{args.out_prefix}_density.mrc", "--out-prefix")


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        _check_outputs(args)
        rc = args.func(args)
    except InputError as exc:
        print(f"discaflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("discaflow: interrupted", file=sys.stderr)
        return 130
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
