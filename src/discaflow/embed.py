"""Re-embedding: each particle's class average pasted back at its refined position and orientation,
giving a density map and a class-label map with the binned tomogram's shape and voxel size.

Each average is masked by the averaging mask, rotated by the particle's rotation and shifted by the
sub-voxel part of its position (trilinear), then added into the density volume. A voxel gets the
class of a particle where that pasted average exceeds ``label_threshold`` standard deviations on the
particle's side (the sign of the average's centre: particles are dark in most tomograms); where two
particles overlap the later one wins. Label 0 is background, labels 1… are ``rlnClassNumber``.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial.transform import Rotation

from discaflow.errors import InputError
from discaflow.fourier import centre_radii, soft_sphere_mask
from discaflow.geometry import transform_volume

log = logging.getLogger(__name__)


def particle_sign(average: np.ndarray) -> float:
    """+1 when the particle is brighter than its surroundings in ``average``, −1 when darker."""
    n = average.shape[0]
    r = centre_radii(n)
    inner, shell = r < max(1.5, n / 6), (r >= n / 4) & (r < n / 2 - 1)
    return 1.0 if average[inner].mean() >= average[shell].mean() else -1.0


def paste(volume: np.ndarray, piece: np.ndarray, centre_zyx) -> tuple[tuple, tuple]:
    """Slices of ``volume`` and ``piece`` that overlap when piece's centre voxel sits at ``centre_zyx``."""
    b = piece.shape[0]
    vs, ps = [], []
    for c, size in zip(centre_zyx, volume.shape):
        lo = int(c) - b // 2
        v0, v1 = max(lo, 0), min(lo + b, size)
        vs.append(slice(v0, max(v0, v1)))
        ps.append(slice(v0 - lo, v0 - lo + max(0, v1 - v0)))
    return tuple(vs), tuple(ps)


def embed_particles(shape_zyx, positions_zyx: np.ndarray, rotations: Rotation, classes: np.ndarray, averages: dict,
                    label_threshold: float = 1.0, mask_radius_vox: float | None = None):
    """Density (float32) and label (int16) volumes of ``shape_zyx`` with one average per particle.

    ``positions_zyx``: particle centres in voxels of the volume (fractional allowed); ``classes``:
    1-based class numbers; ``averages``: class number → n³ average (classes without one are skipped).
    """
    density = np.zeros(shape_zyx, np.float32)
    labels = np.zeros(shape_zyx, np.int16)
    prepared = {}
    for c, avg in averages.items():
        n = avg.shape[0]
        mask = soft_sphere_mask(n, mask_radius_vox if mask_radius_vox is not None else n / 2 - 3, 3.0)
        inside = mask > 0.5
        sd = float(avg[inside].std()) or 1.0
        prepared[c] = (avg * mask, particle_sign(avg), sd)
    for pos, i, c in zip(positions_zyx, range(len(classes)), classes):
        if c not in prepared:
            continue
        avg, sign, sd = prepared[c]
        ic = np.rint(pos).astype(int)
        frac = np.asarray(pos, float) - ic
        piece = transform_volume(avg, rotations[i], shift_xyz_vox=frac[::-1])
        vsl, psl = paste(density, piece, ic)
        density[vsl] += piece[psl]
        lab = labels[vsl]
        lab[sign * piece[psl] > label_threshold * sd] = c
    return density, labels


def run_embed(tomogram_path, tomo_name: str, store_path, labels_csv, poses_csv, average_paths: dict, out_density,
              out_labels, out_png, settings: dict, class_names: dict | None = None, voxel_size_A: float | None = None) -> dict:
    """Re-embed the particles of one tomogram; write density and label MRCs and a PNG overlay.

    Everything is read and checked before the first output is written (each output atomically): the
    tomogram's voxel size (``voxel_size_A``, else its header) against the store's unbinned pixel, the
    labels against the store, every particle inside the tomogram, averages cubic and of the store's box."""
    from discaflow.export import box_centres_unbinned
    from discaflow.extract import outside_tomogram
    from discaflow.io.mrc import read_volume, write_volume
    from discaflow.io.slabs import SlabReader, binned_shape, read_binned_rows
    from discaflow.io.store import SubtomogramStore
    from discaflow.io.tables import POSE_COLUMNS, check_labels, read_table
    from discaflow.pick import resolve_voxel_size
    from discaflow.plots import plot_embedding_overlay

    reader = SlabReader(tomogram_path)
    with SubtomogramStore(store_path) as store:
        g = store.binning  # subtomogram voxel in tomogram pixels
        f = max(1, int(round(g)))  # the maps' grid: the tomogram block-binned by f
        vs, box = store.voxel_size_A, store.box_vox
        coords = store.column("coords")
        labels = check_labels(read_table(labels_csv), store, labels_csv)
    pixel = resolve_voxel_size(reader, voxel_size_A)
    if abs(pixel * g - vs) > 0.01 * vs:
        raise InputError(f"{reader.path}: voxel size {pixel:g} Å x binning {g:g} is not the store's {vs:g} Å; "
                         "give the tomogram the store was extracted from (or its voxel size)")
    if "rlnTomoName" not in labels.columns:
        raise InputError(f"{labels_csv}: lacks column rlnTomoName; give the labels written by disca or predict")
    labels = labels[labels["rlnTomoName"] == tomo_name]
    poses = read_table(poses_csv, POSE_COLUMNS).set_index("dfParticleIndex")
    shape = binned_shape(reader.shape, f)
    idx = labels["dfParticleIndex"].to_numpy(np.int64)
    p = poses.reindex(idx)
    have = p["dfEulerRot"].notna().to_numpy()
    if not have.any() and len(idx):
        log.warning("%s: no particle of this tomogram has an alignment; nothing to embed", tomo_name)
    idx, p = idx[have], p[have]
    centre_unbinned = box_centres_unbinned(coords[idx], g) if len(idx) else np.zeros((0, 3))
    outside = outside_tomogram(centre_unbinned, reader.shape[::-1])
    if len(outside):
        raise InputError(f"{reader.path}: particle {idx[outside[0]]} of {tomo_name} lies at {centre_unbinned[outside[0]].round(1).tolist()} "
                         f"(x, y, z pixels), outside this {reader.shape[::-1]} tomogram; give the tomogram the particles were picked in")
    # binned voxel j spans unbinned voxels j·f … j·f + f − 1, centred at j·f + (f − 1)/2
    # (shifts are in subtomogram voxels: g / f map voxels each)
    pos_xyz = (centre_unbinned - (f - 1) / 2.0) / f + p[["dfShiftX", "dfShiftY", "dfShiftZ"]].to_numpy(float) * (g / f)
    rots = Rotation.from_euler("ZYZ", p[["dfEulerRot", "dfEulerTilt", "dfEulerPsi"]].to_numpy(float), degrees=True) \
        if len(idx) else Rotation.identity(0)
    averages = {}
    for c, path in average_paths.items():
        v = read_volume(path)
        if v.data.shape != (box, box, box):
            raise InputError(f"{path}: a {'x'.join(map(str, v.data.shape[::-1]))} average, the store's subtomograms are {box}³; "
                             "give the averages made from this store")
        if abs(v.voxel_size_A - vs) > 1e-3 * vs:
            raise InputError(f"{path}: voxel size {v.voxel_size_A:g} Å differs from the store's {vs:g} Å; rerun averaging")
        averages[int(c)] = v.data
    map_vs = pixel * f
    if abs(map_vs - vs) > 1e-3 * vs:  # a resampled store: the averages onto the maps' grid
        from discaflow.extract import sample_box

        averages = {c: np.nan_to_num(sample_box(a, [box // 2] * 3, box, map_vs / vs)) for c, a in averages.items()}
    # overlay: central XY slab and the XZ plane through the centre of the binned tomogram (read before
    # any output is written: a NaN in the tomogram stops here)
    nz, ny, nx = shape
    z0, y0 = nz // 2, ny // 2
    xy = read_binned_rows(reader, z0 - 1, z0 + 2, f).mean(axis=0)
    xz = np.empty((nz, nx), np.float32)
    for s in range(0, nz, 16):
        rows = read_binned_rows(reader, s, s + 16, f)
        xz[s: s + len(rows)] = rows[:, y0, :]
    density, lab = embed_particles(shape, pos_xyz[:, ::-1], rots, p["rlnClassNumber"].to_numpy(np.int64), averages,
                                   label_threshold=settings.get("label_threshold", 1.0))
    names = class_names or {}
    classes = sorted(averages)
    # colour index k+1 for the k-th class present; the legend names them
    remap = np.zeros(int(max(classes, default=0)) + 1, np.int16)
    for k, c in enumerate(classes):
        remap[c] = k + 1
    plot_embedding_overlay({"XY (z = %d)" % z0: xy, "XZ (y = %d)" % y0: xz},
                           {"XY (z = %d)" % z0: remap[lab[z0]], "XZ (y = %d)" % y0: remap[lab[:, y0, :]]},
                           [names.get(c, f"class {c}") for c in classes],
                           f"{tomo_name}: classes re-embedded ({len(idx)} particles, binning {f}, {map_vs:g} Å/voxel)", out_png)
    write_volume(out_density, density, map_vs)
    write_volume(out_labels, lab, map_vs)
    return {"tomogram": tomo_name, "particles": int(len(idx)), "shape_zyx": list(shape)}
