"""Why the operator model pays matmul compute in 128-row tiles: fit each tile size to the
shipped VIDUR profiles and print in-sample and leave-one-model-out MAPE per GPU.

    python scripts/latency_tile_choice.py [--tiles 1,64,128,256] [--profiles DIR]
"""

from __future__ import annotations

import argparse

import numpy as np

from dsd.catalog import load_catalog
from dsd.perf.fit import fit_operators, load_points, predict_linear
from dsd.perf.vidur_data import VidurFolder, builtin_profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", default="1,64,128,256")
    parser.add_argument("--profiles", default=None)
    args = parser.parse_args()
    catalog = load_catalog()
    folder = VidurFolder(args.profiles or builtin_profiles())
    print(f"{'gpu':5s} {'tile':>5s} {'in-sample':>10s} {'lomo':>8s} {'lomo worst tp':>14s}")
    for gpu_folder in folder.models:
        gpu = catalog.gpu(gpu_folder)
        points = load_points(folder, gpu_folder, catalog)
        measured = points.measured_linear()
        for tile in (int(t) for t in args.tiles.split(",")):
            fitted = predict_linear(points, fit_operators(points, gpu, tile))
            lomo = np.empty(len(points))
            for model in np.unique(points.model):
                held = points.model == model
                coef = fit_operators(points.subset(~held), gpu, tile)
                lomo[held] = predict_linear(points.subset(held), coef)
            err_in, err_lomo = np.abs(fitted / measured - 1), np.abs(lomo / measured - 1)
            worst = max(err_lomo[points.tp == tp].mean() for tp in np.unique(points.tp))
            print(f"{gpu.name:5s} {tile:5d} {err_in.mean():10.2%} {err_lomo.mean():8.2%} "
                  f"{worst:14.2%}")


if __name__ == "__main__":
    main()
