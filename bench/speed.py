"""Speed benchmark (`make bench-speed`): YOPO throughput against this machine's measured
matrix-multiply peak, and the Gaussian-mixture BIC sweep against N. Run it on an otherwise idle machine.

1. Peak: TensorFlow matmul of 4096² matrices in float32 and bfloat16 (GFLOP/s, best of 5).
2. YOPO (reference network, 24³): inference and training throughput (subtomograms/s) in float32 and
   mixed_bfloat16, and the achieved GFLOP/s of inference from the network's analytic FLOP count
   (2 × multiply-adds of every Conv3D and Dense layer), as a fraction of the peak in that precision.
3. GMM/BIC sweep (K = 2 … 20, full covariance, 16-D) on N = 2,000, 20,000, 200,000 vectors: seconds,
   and the ratio of time per vector at the largest N to that at the smallest (1.0 = linear).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402


def yopo_flops(model) -> float:
    """Floating-point operations of one forward pass (2 per multiply-add of Conv3D and Dense layers)."""
    import keras

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv3D):
            out = layer.output.shape  # (None, d, h, w, c_out)
            k = np.prod(layer.kernel_size)
            total += 2.0 * np.prod(out[1:4]) * out[4] * k * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += 2.0 * layer.input.shape[-1] * layer.units
    return total


def matmul_peak(dtype, n: int = 4096, repeats: int = 5) -> float:
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    tf.linalg.matmul(a, a).numpy()
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        tf.linalg.matmul(a, a).numpy()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9


def yopo_throughput(precision: str, n: int = 512) -> dict:
    import keras

    from discaflow.model import build_classifier, build_feature_model, build_head, set_precision

    set_precision(precision)
    model = build_feature_model(24)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 24, 24, 24, 1), dtype=np.float32)
    model(x[:64], training=False)
    t = time.perf_counter()
    for i in range(0, n, 64):
        np.asarray(model(x[i: i + 64], training=False))
    inference = n / (time.perf_counter() - t)
    clf = build_classifier(model, build_head(1024, 5))
    clf.compile(optimizer=keras.optimizers.Nadam(1e-5), loss="categorical_hinge")
    y = np.eye(5, dtype=np.float32)[np.arange(n) % 5]
    clf.fit(x[:64], y[:64], batch_size=64, epochs=1, verbose=0)
    t = time.perf_counter()
    clf.fit(x, y, batch_size=64, epochs=1, verbose=0)
    training = n / (time.perf_counter() - t)
    flops = yopo_flops(model)
    return {"inference_per_s": inference, "training_per_s": training, "gflop_per_forward": flops / 1e9,
            "inference_gflops": inference * flops / 1e9}


def gmm_sweep(sizes) -> list[dict]:
    from discaflow.gmm import fit_mixtures

    rng = np.random.default_rng(1)
    centres = rng.standard_normal((8, 16)) * 3
    rows = []
    for n in sizes:
        z = centres[rng.integers(0, 8, n)] + rng.standard_normal((n, 16))
        t = time.perf_counter()
        best, _ = fit_mixtures(z, range(2, 21))
        rows.append({"n": n, "seconds": time.perf_counter() - t, "k": best.k})
        print(f"   N = {n:>7}: {rows[-1]['seconds']:.1f} s (K = {best.k})", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000, 200_000])
    ap.add_argument("--subtomograms", type=int, default=512, help="for the throughput measurements")
    args = ap.parse_args()
    import tensorflow as tf

    fig = {}
    print("1. matrix-multiply peak (TensorFlow, 4096²) ...", flush=True)
    fig["peak_gflops"] = {"float32": matmul_peak(tf.float32), "bfloat16": matmul_peak(tf.bfloat16)}
    print(f"   float32 {fig['peak_gflops']['float32']:.0f} GFLOP/s, bfloat16 {fig['peak_gflops']['bfloat16']:.0f} GFLOP/s", flush=True)
    print("2. reference YOPO throughput ...", flush=True)
    for precision, peak in (("float32", "float32"), ("mixed_bfloat16", "bfloat16")):
        r = yopo_throughput(precision, args.subtomograms)
        r["fraction_of_peak"] = r["inference_gflops"] / fig["peak_gflops"][peak]
        fig[precision] = r
        print(f"   {precision}: inference {r['inference_per_s']:.1f}/s ({r['inference_gflops']:.0f} GFLOP/s, "
              f"{100 * r['fraction_of_peak']:.0f} % of peak), training {r['training_per_s']:.1f}/s; "
              f"{r['gflop_per_forward']:.1f} GFLOP per forward pass", flush=True)
    print("3. GMM/BIC sweep K = 2..20 vs N ...", flush=True)
    rows = gmm_sweep(args.sizes)
    fig["gmm_sweep"] = rows
    fig["gmm_time_per_vector_ratio"] = (rows[-1]["seconds"] / rows[-1]["n"]) / (rows[0]["seconds"] / rows[0]["n"])
    print(f"   time per vector at N = {rows[-1]['n']} / at N = {rows[0]['n']}: {fig['gmm_time_per_vector_ratio']:.2f} "
          "(1.0 = linear)")
    write_result("speed", fig)


if __name__ == "__main__":
    main()
