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


# ---------------------------------------------------------------- post-processing figures

def plot_fsc(curves: dict, out_png) -> None:
    """FSC curves (name → DataFrame with ``resolution_A`` and ``fsc``) against 1/resolution, with the
    0.143 and 0.5 thresholds."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, (name, c) in enumerate(curves.items()):
        freq = 1.0 / np.asarray(c["resolution_A"], float)
        ax.plot(freq[1:], np.asarray(c["fsc"])[1:], "-o", ms=3, color=CLASS_COLORS[k % 10], label=name)
    for t in (0.143, 0.5):
        ax.axhline(t, color="grey", lw=0.8, ls="--")
        ax.text(ax.get_xlim()[1], t, f" {t}", va="center", fontsize=8, color="grey")
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC (half maps)")
    ax.set_ylim(-0.2, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("gold-standard Fourier shell correlation")
    _save(fig, out_png)


def plot_class_gallery(averages: list, titles: list[str], out_png) -> None:
    """Central slices (XY, XZ, YZ) of each class average, one row per class."""
    n = max(1, len(averages))
    fig, axes = plt.subplots(n, 3, figsize=(6.2, 2.1 * n + 0.4), squeeze=False)
    for row, (vol, title) in enumerate(zip(averages, titles)):
        c = vol.shape[0] // 2
        for col, (img, plane) in enumerate(((vol[c], "XY"), (vol[:, c, :], "XZ"), (vol[:, :, c], "YZ"))):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", origin="lower")
            ax.set_xticks([]); ax.set_yticks([])
            if row == 0:
                ax.set_title(plane, fontsize=9)
            if col == 0:
                ax.set_ylabel(title, fontsize=8, color=CLASS_COLORS[row % 10])
    fig.suptitle("class averages (central slices; density dark as in the tomogram)", fontsize=10)
    _save(fig, out_png)


def plot_embedding_overlay(slices: dict, label_slices: dict, class_names: list[str], title: str, out_png) -> None:
    """Tomogram slices (plane → 2-D array) with the re-embedded classes coloured on top."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    planes = list(slices)
    widths = [slices[p].shape[1] for p in planes]
    fig, axes = plt.subplots(len(planes), 1, figsize=(9, 9 * sum(slices[p].shape[0] for p in planes) / max(widths) + 1.0),
                             gridspec_kw={"height_ratios": [slices[p].shape[0] for p in planes]}, squeeze=False)
    colours = ListedColormap([(0, 0, 0, 0)] + [(*CLASS_COLORS[k % 10], 0.55) for k in range(max(1, len(class_names)))])
    for ax, plane in zip(axes[:, 0], planes):
        img = slices[plane]
        lo, hi = np.percentile(img, [1, 99])
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower")
        ax.imshow(label_slices[plane], cmap=colours, vmin=0, vmax=len(class_names), origin="lower", interpolation="nearest")
        ax.set_ylabel(plane, fontsize=9)
        ax.set_xticks([]); ax.set_yticks([])
    handles = [Patch(color=CLASS_COLORS[k % 10], label=name) for k, name in enumerate(class_names)]
    if handles:
        axes[0, 0].legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.85)
    axes[0, 0].set_title(title, fontsize=9)
    _save(fig, out_png)


def plot_training(history: list[dict], embeddings: list, labels: list, truth, out_png) -> None:
    """DISCA per iteration: K, DDBI and label agreement, and 2-D t-SNE maps of the features (first,
    middle, best and last iteration) coloured by label and, when known, by true class."""
    its = [h["iteration"] for h in history]
    n_maps = len(embeddings)
    rows = 1 + (2 if truth is not None else 1)
    fig = plt.figure(figsize=(3.2 * max(3, n_maps), 3.0 * rows))
    gs = fig.add_gridspec(rows, max(3, n_maps), hspace=0.45, wspace=0.3)
    panels = (("k", "K", None), ("ddbi", "DDBI (lower is better)", "ddbi_radial"), ("agreement", "label agreement", None))
    for col, (key, name, second) in enumerate(panels):
        ax = fig.add_subplot(gs[0, col])
        vals = [h.get(key) for h in history]
        ax.plot(its, [np.nan if v is None else v for v in vals], "-o", ms=3, label="network features")
        if second and any(h.get(second) is not None for h in history):  # the result's DDBI (disca.rules.result_iteration)
            ax.plot(its, [np.nan if h.get(second) is None else h[second] for h in history], "-s", ms=3,
                    label="radial descriptors")
            ax.legend(fontsize=7)
        ax.set_xlabel("iteration"); ax.set_title(name, fontsize=9)
    for j, (title, xy) in enumerate(embeddings):
        for r, (colour_by, name) in enumerate([(labels[j], "label")] + ([(truth, "true class")] if truth is not None else [])):
            ax = fig.add_subplot(gs[1 + r, j])
            ax.scatter(xy[:, 0], xy[:, 1], s=4, c=[CLASS_COLORS[int(v) % 10] for v in colour_by])
            ax.set_xticks([]); ax.set_yticks([])
            ax.set_title(f"{title}: by {name}", fontsize=8)
    fig.suptitle("DISCA training: K, DDBI and agreement per iteration; t-SNE of the features", fontsize=10)
    _save(fig, out_png)


def plot_training_from_state(state_dir, history_json, out_png, truth=None, max_points: int = 2000,
                             seed: int = 0) -> None:
    """:func:`plot_training` from a DISCA state directory: t-SNE (scikit-learn) of the PCA features of
    the first, middle, best (lowest DDBI) and last iterations, at most ``max_points`` particles."""
    import json

    from sklearn.manifold import TSNE

    history = json.loads(Path(history_json).read_text())
    its = [h["iteration"] for h in history]
    from discaflow.disca.rules import result_iteration

    best = result_iteration(history)[0]["iteration"]  # the result's rule
    chosen = sorted(set([its[0], its[len(its) // 2], best, its[-1]]))
    rng = np.random.default_rng(seed)
    n = len(np.load(Path(state_dir) / f"iter_{its[0]:03d}" / "labels.npy"))
    pick = np.sort(rng.choice(n, size=min(n, max_points), replace=False))
    embeddings, labels = [], []
    for i in chosen:
        d = Path(state_dir) / f"iter_{i:03d}"
        z = np.load(d / "z.npy")[pick]
        perplexity = float(min(30, max(2, (len(z) - 1) / 3)))
        if z.shape[1] < 2:  # pca_components 1: the feature itself against the particle's rank
            xy = np.column_stack([z[:, 0], np.argsort(np.argsort(z[:, 0]))]).astype(np.float32)
        else:
            xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)
        tag = "best" if i == best else ""
        embeddings.append((f"iteration {i} {tag}".strip(), xy))
        labels.append(np.load(d / "labels.npy")[pick])
    t = None if truth is None else np.where(np.asarray(truth)[pick] < 0, 9, np.asarray(truth)[pick])
    plot_training(history, embeddings, labels, t, out_png)
