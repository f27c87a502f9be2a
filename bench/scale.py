"""Benchmark scale (`make bench-scale`): does the pipeline hold 200,000 subtomograms and a 1-Gvoxel
tomogram on this machine? Each stage runs in its own process and reports its peak RSS (VmHWM).

1. write a float16 store of 200,000 subtomograms of 24³ (synthetic: a random blob + noise; the
   content does not change the cost) — time, size on disk;
2. stream every subtomogram back in batches (what feature extraction does) — time, peak RSS;
3. YOPO (reference network, mixed_bfloat16) features of a 5,000-subtomogram slice of the store —
   throughput, peak RSS — projected to 200,000;
4. PCA (1,024 → 16) and the Gaussian-mixture BIC sweep (K = 2 … 20, full covariance) on 200,000
   feature vectors (synthetic 1,024-d features drawn from 8 Gaussian clusters) — time, peak RSS;
5. DoG picking of a 1024³ float32 tomogram (4 GiB on disk, memory-mapped) — time, peak RSS.

Writes bench/results/scale.json with the projected time of one full EM iteration (features of all +
PCA/GMM + one epoch of training over originals and rotated copies at the training rate measured on
1,024 subtomograms). The store is written with lzf compression (faster than gzip; noise does not
compress either way).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PEAK_RSS_MB, run_child, write_result  # noqa: E402

WRITE = r"""
import json, sys, time
import numpy as np
from discaflow.io.store import StoreWriter
path, n, b = sys.argv[1], int(sys.argv[2]), 24
rng = np.random.default_rng(0)
g = np.arange(b) - b // 2
r2 = g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2
blob = np.exp(-r2 / 18.0).astype(np.float32)
t = time.perf_counter()
with StoreWriter(path, b, 16.0, dtype="float16", compression="lzf") as w:
    for s in range(0, n, 2000):
        m = min(2000, n - s)
        x = rng.standard_normal((m, b, b, b), dtype=np.float32) + blob
        w.append(x, coords=np.zeros((m, 3)), tomogram=np.zeros(m, np.int32), score=np.ones(m))
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": PEAK_RSS_MB}))
""".replace("PEAK_RSS_MB", PEAK_RSS_MB)

READ = r"""
import json, sys, time
import numpy as np
from discaflow.io.store import SubtomogramStore
t = time.perf_counter(); total = 0.0; n = 0
with SubtomogramStore(sys.argv[1]) as s:
    for x in s.iter_batches(512):
        total += float(x[:, 12, 12, 12].sum()); n += len(x)
print(json.dumps({"seconds": time.perf_counter() - t, "subtomograms": n, "peak_rss_mb": PEAK_RSS_MB}))
""".replace("PEAK_RSS_MB", PEAK_RSS_MB)

FEATURES = r"""
import json, sys, time
import numpy as np
from discaflow.io.store import SubtomogramStore
from discaflow.model import build_feature_model, predict_batch, set_precision
set_precision("mixed_bfloat16")
model = build_feature_model(24)
n = int(sys.argv[2])
with SubtomogramStore(sys.argv[1]) as s:
    predict_batch(model, s.read(0, 128))  # build, trace and warm up DISCA's compiled predict step
    t = time.perf_counter(); done = 0
    for start in range(0, n, 128):
        x = s.read(start, min(n, start + 128))
        f = predict_batch(model, x, pad_to=128); done += len(x)
seconds = time.perf_counter() - t
# training throughput: the M-step's classifier (features + softmax head), categorical hinge, Nadam
import keras
from discaflow.model import build_classifier, build_head
clf = build_classifier(model, build_head(1024, 5))
clf.compile(optimizer=keras.optimizers.Nadam(1e-5), loss="categorical_hinge")
with SubtomogramStore(sys.argv[1]) as s:
    x = s.read(0, 1024)[..., None]
y = np.eye(5, dtype=np.float32)[np.arange(1024) % 5]
clf.fit(x[:128], y[:128], batch_size=64, epochs=1, verbose=0)  # build
t = time.perf_counter()
clf.fit(x, y, batch_size=64, epochs=1, verbose=0)
train = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "subtomograms": done, "train_seconds_1024": train, "peak_rss_mb": PEAK_RSS_MB}))
""".replace("PEAK_RSS_MB", PEAK_RSS_MB)

MIXTURES = r"""
import json, sys, time
import numpy as np
from discaflow.cluster.mixtures import fit_mixtures, fit_pca
n = int(sys.argv[1])
rng = np.random.default_rng(1)
centres = rng.standard_normal((8, 1024)).astype(np.float32) * 0.5
feats = np.empty((n, 1024), np.float32)
for s in range(0, n, 10000):
    m = min(10000, n - s)
    feats[s: s + m] = centres[rng.integers(0, 8, m)] + rng.standard_normal((m, 1024), dtype=np.float32)
t = time.perf_counter()
pca = fit_pca(feats, 16)
z = pca.transform(feats.astype(np.float64))
t_pca = time.perf_counter() - t
t = time.perf_counter()
best, fits = fit_mixtures(z, range(2, 21))
print(json.dumps({"pca_seconds": t_pca, "gmm_seconds": time.perf_counter() - t, "k": best.k, "peak_rss_mb": PEAK_RSS_MB}))
""".replace("PEAK_RSS_MB", PEAK_RSS_MB)

PICK = r"""
import json, sys, time
import mrcfile, numpy as np
from discaflow.pick import PickParams, pick_tomogram
path = sys.argv[1]
t = time.perf_counter()
table, summary = pick_tomogram(path, PickParams(particle_radius_A=70, threads=2), voxel_size_A=16.0)
print(json.dumps({"seconds": time.perf_counter() - t, "picked": len(table), "peak_rss_mb": PEAK_RSS_MB}))
""".replace("PEAK_RSS_MB", PEAK_RSS_MB)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="subtomograms in the store")
    ap.add_argument("--feature-sample", type=int, default=5_000, help="subtomograms whose features are timed")
    ap.add_argument("--tomogram-edge", type=int, default=1024, help="edge of the cubic tomogram picked (voxels)")
    ap.add_argument("--workdir", default=None, help="where the big files go (default: a temporary directory)")
    args = ap.parse_args()
    import mrcfile
    import numpy as np

    work = Path(args.workdir or tempfile.mkdtemp())
    work.mkdir(parents=True, exist_ok=True)
    store = work / "scale.h5"
    fig = {"n": args.n}
    print(f"1. writing {args.n} subtomograms of 24³ (float16) ...", flush=True)
    fig["write"] = run_child(WRITE, store, args.n)
    fig["store_gb"] = store.stat().st_size / 1e9
    print(f"   {fig['write']['seconds']:.0f} s, {fig['store_gb']:.2f} GB, peak RSS {fig['write']['peak_rss_mb']:.0f} MB", flush=True)
    print("2. streaming every subtomogram back ...", flush=True)
    fig["read"] = run_child(READ, store)
    print(f"   {fig['read']['seconds']:.0f} s ({args.n / fig['read']['seconds']:.0f}/s), peak RSS {fig['read']['peak_rss_mb']:.0f} MB", flush=True)
    print(f"3. reference YOPO features (bf16) of {args.feature_sample} ...", flush=True)
    fig["features"] = run_child(FEATURES, store, args.feature_sample)
    rate = fig["features"]["subtomograms"] / fig["features"]["seconds"]
    fig["features"]["per_second"] = rate
    train_rate = 1024 / fig["features"]["train_seconds_1024"]
    fig["features"]["train_per_second"] = train_rate
    print(f"   inference {rate:.1f}/s, training {train_rate:.1f}/s, peak RSS {fig['features']['peak_rss_mb']:.0f} MB; "
          f"features of 200,000 would take {200_000 / rate / 3600:.1f} h", flush=True)
    print(f"4. PCA + GMM/BIC sweep K 2..20 on {args.n} feature vectors ...", flush=True)
    fig["mixtures"] = run_child(MIXTURES, args.n)
    print(f"   PCA {fig['mixtures']['pca_seconds']:.0f} s, GMM sweep {fig['mixtures']['gmm_seconds']:.0f} s (K = {fig['mixtures']['k']}), "
          f"peak RSS {fig['mixtures']['peak_rss_mb']:.0f} MB", flush=True)
    store.unlink()
    e = args.tomogram_edge
    tomo = work / "big.mrc"
    print(f"5. picking a {e}³ float32 tomogram ({e ** 3 * 4 / 2 ** 30:.1f} GiB, memory-mapped) ...", flush=True)
    m = mrcfile.new_mmap(tomo, shape=(e, e, e), mrc_mode=2, overwrite=True)
    rng = np.random.default_rng(2)
    for z in range(0, e, 64):
        m.data[z: z + 64] = rng.standard_normal((min(64, e - z), e, e), dtype=np.float32)
    m.voxel_size = 16.0
    m.close()
    fig["pick"] = run_child(PICK, tomo)
    fig["pick"]["gvoxel"] = e ** 3 / 1e9
    tomo.unlink()
    print(f"   {fig['pick']['seconds']:.0f} s ({e ** 3 / fig['pick']['seconds'] / 1e6:.1f} Mvoxel/s), peak RSS "
          f"{fig['pick']['peak_rss_mb']:.0f} MB", flush=True)
    # one EM iteration at 200k: features of all, PCA + GMM, training on originals + rotated copies
    hours = (200_000 / rate + 2 * 200_000 / train_rate + fig["mixtures"]["pca_seconds"] + fig["mixtures"]["gmm_seconds"]) / 3600
    fig["projected_em_iteration_hours_this_cpu"] = hours
    print(f"projected EM iteration at 200,000 on this CPU: {hours:.1f} h (features of all + one training epoch over "
          "originals and rotated copies at the measured training rate + PCA and mixtures)")
    write_result("scale", fig)


if __name__ == "__main__":
    main()
