"""Scores shared by tests and benchmarks: picking recall/precision against ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

XYZ = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]


def match_picks(picks: pd.DataFrame, truth: pd.DataFrame, radius_vox) -> dict:
    """Recall and precision of picks against true particles of one tomogram.

    A true particle counts as found when a pick lies within its radius (``radius_vox``: a number or
    one value per true particle, in the coordinates' pixels); a pick is correct when it lies within
    the radius of some true particle.
    """
    truth_xyz = truth[XYZ].to_numpy(float)
    pick_xyz = picks[XYZ].to_numpy(float) if len(picks) else np.zeros((0, 3))
    radius = np.broadcast_to(np.asarray(radius_vox, float), (len(truth_xyz),))
    if len(truth_xyz) == 0 or len(pick_xyz) == 0:
        return {"true": len(truth_xyz), "picked": len(pick_xyz), "found": 0, "correct_picks": 0,
                "recall": 0.0 if len(truth_xyz) else float("nan"), "precision": 0.0 if len(pick_xyz) else float("nan")}
    d, _ = cKDTree(pick_xyz).query(truth_xyz)
    found = d <= radius
    # a pick is correct if within the radius of its nearest true particle (by normalised distance)
    dist = np.linalg.norm(pick_xyz[:, None, :] - truth_xyz[None], axis=2) / radius[None]
    correct = dist.min(axis=1) <= 1.0
    return {"true": len(truth_xyz), "picked": len(pick_xyz), "found": int(found.sum()), "correct_picks": int(correct.sum()),
            "recall": float(found.mean()), "precision": float(correct.mean())}


def inside_border(xyz: np.ndarray, shape_xyz, border) -> np.ndarray:
    """Which positions lie at least ``border`` pixels from every face of a volume of ``shape_xyz``."""
    xyz = np.asarray(xyz, float)
    return np.all((xyz >= border) & (xyz <= np.asarray(shape_xyz, float) - 1 - border), axis=1)


def clustering_scores(truth: np.ndarray, labels: np.ndarray) -> dict:
    """Homogeneity, completeness, V-measure (scikit-learn) and Hungarian accuracy.

    Accuracy is the fraction of subtomograms in matched clusters after the best one-to-one matching of
    clusters to classes; the DISCA paper reports it only when the number of clusters is right.
    """
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import homogeneity_completeness_v_measure

    h, c, v = homogeneity_completeness_v_measure(truth, labels)
    t = np.unique(truth, return_inverse=True)[1]
    lab = np.unique(labels, return_inverse=True)[1]
    overlap = np.zeros((lab.max() + 1, t.max() + 1), np.int64)
    np.add.at(overlap, (lab, t), 1)
    rows, cols = linear_sum_assignment(-overlap)
    return {"k": int(lab.max() + 1), "k_true": int(t.max() + 1), "homogeneity": float(h), "completeness": float(c),
            "v_measure": float(v), "accuracy": float(overlap[rows, cols].sum() / len(truth))}


def true_classes_of_particles(coords_xyz: np.ndarray, tomogram_names, truth_tables: dict, radius_px: float) -> np.ndarray:
    """Ground-truth class (0-based) of each particle: the class of the nearest true particle of its
    tomogram within ``radius_px`` (unbinned pixels), else −1 (a pick of something else)."""
    out = np.full(len(coords_xyz), -1, np.int64)
    names = np.asarray(tomogram_names)
    for name, truth in truth_tables.items():
        sel = np.flatnonzero(names == name)
        if len(sel) == 0 or len(truth) == 0:
            continue
        d, j = cKDTree(truth[XYZ].to_numpy(float)).query(np.asarray(coords_xyz, float)[sel])
        cls = truth["rlnClassNumber"].to_numpy(np.int64)[j] - 1
        out[sel] = np.where(d <= radius_px, cls, -1)
    return out
