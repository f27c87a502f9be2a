"""Particle lists for the tools users already run: RELION 5, Warp/M (and RELION 3/4), plain CSV.

Conventions (checked against RELION's source, 3dem/relion ``ParticleSet`` and ``tomogram_set.cpp``):

* discaflow stores positions as 0-based pixels of the unbinned source tomogram (voxel i spans
  i − 0.5 … i + 0.5) — exactly Warp's ``rlnCoordinateX/Y/Z`` ("0 = centre of the first voxel").
* RELION 5 ``rlnCenteredCoordinateX/Y/ZAngst`` = (pixel − size / 2) × pixel size, with size the
  tomogram's edge in its own pixels (RELION's C++ takes the tomogram centre as size / 2; its Python
  picker uses size / 2 − 1, one pixel apart — we follow the C++ that extraction and refinement use).
* RELION's ``rlnAngleRot/Tilt/Psi`` (ZYZ) give the matrix that maps particle (reference) coordinates
  into the tomogram as the *transpose* of SciPy's intrinsic ZYZ matrix of the same angles, so
  RELION angles = ZYZ angles of the inverse of discaflow's rotation (the rotation applied to the
  average). Warp uses RELION's angles.
* Positions are refined by the alignment: the particle centre is the extraction box centre plus the
  alignment shift (in unbinned pixels), so ``rlnOriginX/Y/ZAngst`` are 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from discaflow.errors import InputError
from discaflow.io.atomic import atomic_path
from discaflow.io.star import write_star

log = logging.getLogger(__name__)


def relion_angles(rotations: Rotation) -> np.ndarray:
    """RELION ``(rlnAngleRot, rlnAngleTilt, rlnAnglePsi)`` in degrees of discaflow rotations."""
    return rotations.inv().as_euler("ZYZ", degrees=True)


def rotations_from_relion(angles_deg) -> Rotation:
    """Inverse of :func:`relion_angles`."""
    return Rotation.from_euler("ZYZ", np.asarray(angles_deg, float), degrees=True).inv()


def centered_angstrom(xyz_px, size_xyz, pixel_A: float) -> np.ndarray:
    """RELION 5 centred coordinates (Å) of 0-based pixel positions in a tomogram of ``size_xyz`` pixels."""
    return (np.asarray(xyz_px, float) - np.asarray(size_xyz, float) / 2.0) * float(pixel_A)


def pixels_from_centered(xyz_A, size_xyz, pixel_A: float) -> np.ndarray:
    """Inverse of :func:`centered_angstrom`."""
    return np.asarray(xyz_A, float) / float(pixel_A) + np.asarray(size_xyz, float) / 2.0


def box_centres_unbinned(coords_xyz, binning: float) -> np.ndarray:
    """Unbinned position (x, y, z) of the centre voxel of the box extracted around each coordinate: the
    nearest binned voxel for an integer binning, the coordinate itself for a resampled store."""
    from discaflow.extract import binned_centres

    if abs(binning - round(binning)) > 1e-6:
        return np.asarray(coords_xyz, float).copy()
    f = int(round(binning))
    return binned_centres(coords_xyz, f)[:, ::-1] * f + (f - 1) / 2.0


def particle_table(store, labels: pd.DataFrame, poses: pd.DataFrame | None) -> pd.DataFrame:
    """One row per labelled particle: tomogram, refined unbinned position (pixels), discaflow rotation
    (as a quaternion column set), class, half set. Particles without a pose keep the pick position
    and the identity rotation."""
    coords = store.column("coords")
    if len(coords) and not np.isfinite(coords).all():
        raise InputError(f"{store.path}: subtomograms without tomogram coordinates (a simulated set); "
                         "particle lists need picked particles")
    f = store.binning  # subtomogram voxel in tomogram pixels
    idx = labels["dfParticleIndex"].to_numpy(np.int64)
    t = pd.DataFrame({"dfParticleIndex": idx, "rlnTomoName": labels["rlnTomoName"].to_numpy(),
                      "rlnClassNumber": labels["rlnClassNumber"].to_numpy(np.int64)})
    centre = box_centres_unbinned(coords[idx], f) if len(idx) else np.zeros((0, 3))
    shift = np.zeros((len(idx), 3))
    rot = Rotation.identity(len(idx)) if len(idx) else None
    half = np.zeros(len(idx), np.int64)
    if poses is not None and len(poses) and len(idx):
        p = poses.set_index("dfParticleIndex").reindex(idx)
        have = p["dfEulerRot"].notna().to_numpy()
        shift[have] = p.loc[have, ["dfShiftX", "dfShiftY", "dfShiftZ"]].to_numpy(float)
        euler = np.zeros((len(idx), 3))
        euler[have] = p.loc[have, ["dfEulerRot", "dfEulerTilt", "dfEulerPsi"]].to_numpy(float)
        rot = Rotation.from_euler("ZYZ", euler, degrees=True)
        half[have] = p.loc[have, "dfHalf"].to_numpy(np.int64)
    xyz = centre + shift * f
    t["x_px"], t["y_px"], t["z_px"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    ang = relion_angles(rot) if rot is not None else np.zeros((0, 3))
    t["rlnAngleRot"], t["rlnAngleTilt"], t["rlnAnglePsi"] = ang[:, 0], ang[:, 1], ang[:, 2]
    t["rlnRandomSubset"] = half
    return t


def relion5_table(t: pd.DataFrame, sizes: dict, pixel_A: float) -> pd.DataFrame:
    """RELION 5 particles block (centred Å)."""
    size = np.array([sizes[n] for n in t["rlnTomoName"]], float).reshape(-1, 3)
    c = centered_angstrom(t[["x_px", "y_px", "z_px"]].to_numpy(float), size, pixel_A)
    out = pd.DataFrame({"rlnTomoName": t["rlnTomoName"].to_numpy()})
    out["rlnTomoParticleName"] = [f"{n}/{i + 1}" for n, i in zip(t["rlnTomoName"], t.groupby("rlnTomoName").cumcount())]
    out["rlnCenteredCoordinateXAngst"], out["rlnCenteredCoordinateYAngst"], out["rlnCenteredCoordinateZAngst"] = c[:, 0], c[:, 1], c[:, 2]
    for k in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnClassNumber"):
        out[k] = t[k].to_numpy()
    out["rlnOpticsGroup"] = 1
    if (t["rlnRandomSubset"] > 0).all():
        out["rlnRandomSubset"] = t["rlnRandomSubset"].to_numpy()
    return out


def warp_table(t: pd.DataFrame, micrograph_suffix: str) -> pd.DataFrame:
    """Warp/M and RELION 3/4 block (pixels of the unbinned tomogram)."""
    out = pd.DataFrame({"rlnMicrographName": [f"{n}{micrograph_suffix}" for n in t["rlnTomoName"]],
                        "rlnTomoName": t["rlnTomoName"].to_numpy(),
                        "rlnCoordinateX": t["x_px"].to_numpy(), "rlnCoordinateY": t["y_px"].to_numpy(),
                        "rlnCoordinateZ": t["z_px"].to_numpy()})
    for k in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnClassNumber"):
        out[k] = t[k].to_numpy()
    return out


def optics_table(pixel_A: float, settings: dict) -> pd.DataFrame:
    return pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                         "rlnTomoTiltSeriesPixelSize": [float(pixel_A)],
                         "rlnVoltage": [float(settings.get("voltage_kV", 300.0))],
                         "rlnSphericalAberration": [float(settings.get("spherical_aberration_mm", 2.7))],
                         "rlnAmplitudeContrast": [float(settings.get("amplitude_contrast", 0.07))]})


def _csv(path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def run_export(store_path, labels_csv, poses_csv, tomogram_sizes: dict, out_dir, settings: dict) -> dict:
    """Write every particle list of a dataset into ``out_dir``.

    ``tomogram_sizes``: tomogram name → (nx, ny, nz) in pixels of the unbinned tomogram.
    Files: ``relion5_particles.star`` (optics + particles), ``relion5_import.star`` with
    ``relion5_import/<tomogram>.star`` (for RELION 5's Import coordinates job), ``warp_particles.star``,
    ``particles.csv``, and the same per class under ``classes/``.
    """
    from discaflow.io.store import SubtomogramStore

    out = Path(out_dir)
    from discaflow.extract import outside_tomogram
    from discaflow.io.atomic import exclusive_lock
    from discaflow.io.tables import POSE_COLUMNS, check_labels, read_table

    labels = read_table(labels_csv, ("dfParticleIndex", "rlnTomoName", "rlnClassNumber"))
    poses = read_table(poses_csv, POSE_COLUMNS) if poses_csv else None
    with SubtomogramStore(store_path) as store:
        labels = check_labels(labels, store, labels_csv)
        pixel_A = store.voxel_size_A / store.binning
        t = particle_table(store, labels, poses)
    unknown = sorted(set(t["rlnTomoName"]) - set(tomogram_sizes))
    if unknown:
        raise InputError(f"{labels_csv}: tomograms {unknown} are not in the dataset; rerun picking for this dataset")
    size = np.array([tomogram_sizes[n] for n in t["rlnTomoName"]], float).reshape(-1, 3)
    xyz = t[["x_px", "y_px", "z_px"]].to_numpy(float)
    outside = outside_tomogram(xyz, size)
    if len(outside):
        k = outside[0]
        raise InputError(f"{labels_csv}: particle {t['dfParticleIndex'].iloc[k]} lies at {xyz[k].round(1).tolist()} (x, y, z pixels), "
                         f"outside tomogram {t['rlnTomoName'].iloc[k]} ({size[k].astype(int).tolist()} pixels); give the "
                         "tomograms the particles were picked in")
    with exclusive_lock(out, "export output directory"):  # checked above; written below
        suffix = settings.get("micrograph_suffix", ".tomostar")
        optics = optics_table(pixel_A, settings)
        (out / "classes").mkdir(parents=True, exist_ok=True)
        (out / "relion5_import").mkdir(parents=True, exist_ok=True)

        def write_all(table, stem):
            write_star(out / f"{stem}relion5_particles.star", {"optics": optics, "particles": relion5_table(table, tomogram_sizes, pixel_A)})
            write_star(out / f"{stem}warp_particles.star", warp_table(table, suffix))
            plain = table.rename(columns={"x_px": "x_px_unbinned", "y_px": "y_px_unbinned", "z_px": "z_px_unbinned"})
            _csv(out / f"{stem}particles.csv", plain)

        for c in sorted(t["rlnClassNumber"].unique()):
            write_all(t[t["rlnClassNumber"] == c], f"classes/class_{int(c):02d}_")
        rel = relion5_table(t, tomogram_sizes, pixel_A)
        rows = []
        for name in sorted(tomogram_sizes):
            part = rel[rel["rlnTomoName"] == name].drop(columns=["rlnOpticsGroup"])
            path = out / "relion5_import" / f"{name}.star"
            write_star(path, part)
            rows.append({"rlnTomoName": name, "rlnTomoImportParticleFile": f"relion5_import/{name}.star"})
        write_star(out / "relion5_import.star", pd.DataFrame(rows))
        write_all(t, "")  # the all-classes files last: their presence means the export is complete
    log.info("exported %d particles of %d classes (%d tomograms) to %s", len(t), t["rlnClassNumber"].nunique(),
             len(tomogram_sizes), out)
    return {"particles": len(t), "classes": int(t["rlnClassNumber"].nunique())}
