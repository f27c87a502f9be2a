"""The benchmark scripts run: a smoke-sized Table 1 (all three methods, every column) end to end.
Benchmarks are not tests; this only checks their harness, never their figures."""

import json
import os
import py_compile
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "bench").glob("*.py")))
def test_bench_scripts_compile(script):
    py_compile.compile(str(REPO / "bench" / script), doraise=True)


@pytest.mark.slow
def test_table1_smoke_preset_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DISCAFLOW_BENCH_RESULTS": str(tmp_path / "results")}
    out = subprocess.run([sys.executable, str(REPO / "bench" / "table1.py"), "--preset", "smoke", "--work-dir", str(tmp_path / "w")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "results" / "table1_smoke.json").read_text())
    cell = result["grid"][0]
    for method in ("discaflow", "reference", "classical", "classical_split"):
        assert 0 <= cell[method]["homogeneity"] <= 1 and cell[method]["k_true"] == 5
    assert cell["reference"]["k"] in (5, 10)  # the reference design's candidates, clipped for 60 subtomograms
    assert result["speed"]["per_iteration_ratios"][0] > 0 and len(result["sample_size"]) == 1
    assert "Table 1 (smoke preset" in out.stdout and "EM speed" in out.stdout
    md = subprocess.run([sys.executable, str(REPO / "bench" / "table1.py"), "--preset", "smoke", "--markdown"],
                        env=env, capture_output=True, text=True, timeout=120)
    assert md.returncode == 0, md.stderr[-2000:]
    assert "| ±60° | 0.1 | " in md.stdout and md.stdout.rstrip().endswith("0.988 (99.7) |")


def test_demo_truth_counts_complex_and_junk_picks(tmp_path):
    """bench/demo_truth.py matches picks to the ground truth within a quarter box and scores the
    complex picks apart from the junk ones."""
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(REPO / "bench"))
    from demo_truth import evaluate

    from discaflow.io.star import write_star
    from discaflow.io.store import StoreWriter

    truth = pd.DataFrame({"rlnCoordinateX": [10.0, 50.0, 90.0], "rlnCoordinateY": [10.0, 50.0, 90.0],
                          "rlnCoordinateZ": [10.0, 10.0, 10.0], "rlnClassNumber": [1, 2, 2],
                          "dfClassName": ["a", "b", "b"]})
    write_star(tmp_path / "tomo_000_particles.star", truth)
    # picks: on a (class 1), on b (class 2), on b (class 2), junk far away (class 2), junk (class 3)
    coords = np.array([[11, 10, 10], [50, 51, 10], [90, 90, 11], [200, 200, 10], [150, 10, 10]], np.float32)
    with StoreWriter(tmp_path / "s.h5", 8, 16.0, tomogram_names=["tomo_000"]) as w:
        w.append(np.random.default_rng(0).standard_normal((5, 8, 8, 8)).astype(np.float32), coords=coords, tomogram=0)
    pd.DataFrame({"dfParticleIndex": range(5), "rlnClassNumber": [1, 2, 2, 2, 3]}).to_csv(tmp_path / "labels.csv", index=False)
    out = evaluate(tmp_path / "s.h5", tmp_path / "labels.csv", [tmp_path / "tomo_000_particles.star"])
    assert out["complex_picks"] == 3 and out["junk_picks"] == 2 and out["k"] == 3
    assert out["complex_picks_scores"]["homogeneity"] == 1.0
    assert out["complex_classes"] == [1, 2] and out["junk_in_complex_classes"] == 1
    assert out["class_table"][2] == {"a": 0, "b": 2, "junk": 1}


def test_bench_readme_is_generated_from_the_result_files():
    out = subprocess.run([sys.executable, str(REPO / "bench" / "report.py"), "--check"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_an_enantiomer_keeps_the_centre_and_the_radial_profile():
    """bench/_common.load_named("mirror-…") reflects about the centre voxel (an even box too), so the
    enantiomer has the same support radius and the same radial descriptors (profile, spectrum,
    moments) as its map."""
    import numpy as np

    sys.path.insert(0, str(REPO / "bench"))
    from _common import load_named

    from discaflow.cluster.radial import radial_features

    a, m = load_named("4v4r"), load_named("mirror-4v4r")  # 42³ at 16 Å: an even box
    assert m.density.shape == a.density.shape and m.radius_vox == a.radius_vox
    f = radial_features(np.stack([a.density, m.density]), polarity=1.0)
    np.testing.assert_allclose(f[0], f[1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a.density, m.density)


def test_template_matching_ceiling_tells_a_shape_from_its_enantiomer():
    """bench/ceiling.template_matching_ceiling: two mirror-image shapes in random orientations, with
    noise, are told apart by their best correlation with a bank of noise-free rotated copies; the
    same shape twice cannot be."""
    import numpy as np
    from scipy import ndimage
    from scipy.spatial.transform import Rotation

    sys.path.insert(0, str(REPO / "bench"))
    from ceiling import template_matching_ceiling

    b = 12
    shape = np.zeros((b, b, b), np.float32)  # an L of three arms of different lengths: chiral
    shape[6, 6, 2:10] = 1
    shape[6, 2:6, 6] = 1
    shape[3:6, 6, 6] = 1
    shape = ndimage.gaussian_filter(shape, 0.8)
    mirror = shape[:, :, ::-1].copy()
    g = np.indices((b,) * 3).reshape(3, -1).T - b // 2

    def rotated(vol, n, seed):
        out = [ndimage.map_coordinates(vol, (g @ r + b // 2).T, order=1).reshape(vol.shape)
               for r in Rotation.random(n, random_state=seed).as_matrix()]
        return np.stack(out)

    rng = np.random.default_rng(0)
    x = np.concatenate([rotated(shape, 30, 1), rotated(mirror, 30, 2)])
    x += 0.3 * x.std() * rng.standard_normal(x.shape).astype(np.float32)
    y = np.repeat([0, 1], 30)
    bank_y = np.repeat([0, 1], 400)
    r = template_matching_ceiling(x, y, np.concatenate([rotated(shape, 400, 3), rotated(mirror, 400, 4)]), bank_y)
    assert r["accuracy"] >= 0.9 and r["bank_per_class"] == 400 and np.sum(r["confusion"]) == 60
    same = template_matching_ceiling(x[:30], np.zeros(30, int), rotated(shape, 50, 5), np.zeros(50, int))
    assert same["accuracy"] == 1.0
