"""Figures (matplotlib, Agg backend): simulation previews; later stages add theirs here."""

from __future__ import annotations

import os

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
