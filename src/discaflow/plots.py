"""Figures (matplotlib, Agg backend): simulation previews; later stages add theirs here."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from discaflow.io.atomic import atomic_path  # noqa: E402
from discaflow.io.mrc import read_volume  # noqa: E402
from discaflow.io.star import read_star  # noqa: E402
from discaflow.io.store import SubtomogramStore  # noqa: E402

CLASS_COLORS = plt.get_cmap("tab10").colors


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_simulation_preview(tomogram_mrc: str | os.PathLike, particles_star, store_h5, out_png, per_class: int = 4) -> None:
    """Central XY slab of a tomogram with ground-truth circles, and a gallery of subtomograms per class."""
    vol = read_volume(tomogram_mrc)
    table = read_star(particles_star)
    with SubtomogramStore(store_h5) as store:
        labels = store.column("label")
        names = store.class_names
        b = store.box_vox
        gallery = []
        for k in range(len(names)):
            idx = np.flatnonzero(labels == k)[:per_class]
            gallery.append(store.take(idx)[:, b // 2] if len(idx) else np.zeros((0, b, b)))
    nz = vol.data.shape[0]
    z0 = nz // 2
    slab = vol.data[max(z0 - 2, 0) : z0 + 3].mean(axis=0)
    fig = plt.figure(figsize=(13, 6.5))
    ax = fig.add_axes([0.02, 0.05, 0.5, 0.9])
    lo, hi = np.percentile(slab, [1, 99])
    ax.imshow(slab, cmap="gray", vmin=lo, vmax=hi, origin="lower")
    vs = vol.voxel_size_A
    for k, name in enumerate(names):
        sel = table[(table["rlnClassNumber"] == k + 1)]
        near = sel[np.abs(sel["rlnCoordinateZ"] - z0) < 6]
        ax.scatter(near["rlnCoordinateX"], near["rlnCoordinateY"], s=160, facecolors="none",
                   edgecolors=[CLASS_COLORS[k % 10]], linewidths=1.5, label=name)
    ax.set_title(f"{os.path.basename(str(tomogram_mrc))}: XY slab at z = {z0} ({vs:g} Å/voxel), ground truth circled")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    ax.set_xticks([]); ax.set_yticks([])
    for k, (name, imgs) in enumerate(zip(names, gallery)):
        for j in range(per_class):
            a = fig.add_axes([0.55 + 0.105 * j, 0.9 - 0.18 * (k + 1) + 0.02, 0.1, 0.16])
            if j < len(imgs):
                a.imshow(imgs[j], cmap="gray", origin="lower")
            a.set_xticks([]); a.set_yticks([])
            if j == 0:
                a.set_ylabel(name, fontsize=8, color=CLASS_COLORS[k % 10])
    fig.text(0.55, 0.93, "labelled subtomograms (central XY slice)", fontsize=10)
    _save(fig, out_png)


def plot_picks(tomogram_mrc, picks_star, out_png, target_voxel_size_A=None, voxel_size_A=None, truth_star=None,
               slab_half_vox: int = 2) -> None:
    """Central XY slab of a (binned) tomogram with the picks circled, and the ground truth if given."""
    from discaflow.io.slabs import SlabReader, read_binned_rows
    from discaflow.pick import binning_factor, resolve_voxel_size

    reader = SlabReader(tomogram_mrc)
    vs = resolve_voxel_size(reader, voxel_size_A)
    f = binning_factor(vs, target_voxel_size_A)
    nzb = reader.shape[0] // f
    z0 = nzb // 2
    slab = read_binned_rows(reader, z0 - slab_half_vox, z0 + slab_half_vox + 1, f).mean(axis=0)
    picks = read_star(picks_star)
    fig, ax = plt.subplots(figsize=(8, 8 * slab.shape[0] / slab.shape[1] + 0.6))
    lo, hi = np.percentile(slab, [1, 99])
    ax.imshow(slab, cmap="gray", vmin=lo, vmax=hi, origin="lower")

    def near(table):
        zb = (table["rlnCoordinateZ"] - (f - 1) / 2) / f
        sel = table[np.abs(zb - z0) <= 4]
        return (sel["rlnCoordinateX"] - (f - 1) / 2) / f, (sel["rlnCoordinateY"] - (f - 1) / 2) / f

    n_truth = 0
    if truth_star is not None:
        truth = read_star(truth_star)
        tx, ty = near(truth)
        n_truth = len(tx)
        ax.scatter(tx, ty, s=260, marker="s", facecolors="none", edgecolors="#1f77b4", linewidths=1.2, label=f"ground truth ({n_truth})")
    if len(picks):
        px, py = near(picks)
        ax.scatter(px, py, s=140, facecolors="none", edgecolors="#ff7f0e", linewidths=1.5, label=f"DoG picks ({len(px)})")
    ax.set_title(f"{Path(str(tomogram_mrc)).name}: picks within ±4 voxels of z = {z0} (binning {f}, {vs * f:g} Å/voxel); "
                 f"{len(picks)} picks in the tomogram", fontsize=9)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    ax.set_xticks([]); ax.set_yticks([])
    _save(fig, out_png)
