"""Training and evaluation images/s of vitprune against timm's own train.py and validate.py (run by hand).

    python benchmarks/train_eval_speed.py --timm-scripts /work/ext/timm [--batch 64] [--workers 1]
        [--epochs 1] [--device cpu] [--threads 1] [--model vitprune_tiny_patch4_32]

timm's scripts are not in its wheel: take ``train.py`` and ``validate.py`` from a checkout of
https://github.com/huggingface/pytorch-image-models (kept outside this repository). Both sides run
one after the other on the same ImageFolder (the digits written as 32×32 PNGs: ``train/`` 1,437
images, ``val/`` 360, 10 class folders), model, batch, loader processes and device:

* training: ``vitprune finetune --data DIR`` (AdamW, timm's training transform) and ``train.py DIR``
  (``--opt adamw``, its default augmentation); images/s of the training steps, the mean over the
  last epoch as each program reports it;
* evaluation: ``vitprune eval``'s PyTorch pass over ``val/`` and ``validate.py DIR --split val``;
  images/s over the whole split.

The ratio vitprune / timm is printed for both. timm's scripts run through a small launcher that
registers vitprune's tiny model with timm and imports timm the way vitprune does (see
``vitprune_export/_compat.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
LAUNCHER = """
import runpy, sys
from vitprune_export._compat import import_timm
from vitprune_export.pruning.models import list_model_names
import_timm(); list_model_names()  # registers vitprune_tiny_patch4_32 with timm
script = sys.argv.pop(1)
sys.argv[0] = script
runpy.run_path(script, run_name="__main__")
"""


def write_digits_folder(root: Path, size: int = 32) -> Path:
    """The digits' fixed train/test split as an ImageFolder: root/train/<digit>/<i>.png, root/val/<digit>/<i>.png."""
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from sklearn.datasets import load_digits

    from vitprune_export.accuracy.data import _digits_split_indices

    bunch = load_digits()
    labels = [int(v) for v in bunch.target]
    train, test = _digits_split_indices(labels)
    for split, indices in (("train", train), ("val", test)):
        for index in indices:
            folder = root / split / str(labels[index])
            folder.mkdir(parents=True, exist_ok=True)
            pixels = torch.tensor(bunch.images[index], dtype=torch.float32)[None, None] / 16.0
            pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
            image = (pixels[0, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
            Image.fromarray(image, mode="L").convert("RGB").save(folder / f"{index}.png")
    return root


def input_size(model_name: str) -> tuple[int, int, int]:
    """The model's own input size (timm's scripts would take the 224 default of its data config)."""
    from vitprune_export.pruning.models import create_model, input_size_of

    return input_size_of(create_model(model_name, "random", seed=0))


def export_state_dict(checkpoint: Path, path: Path) -> None:
    """vitprune's checkpoint as the plain ``state_dict`` file validate.py loads."""
    import torch

    torch.save({"state_dict": torch.load(checkpoint, weights_only=True)["state_dict"]}, path)


def _run(command: list[str]) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout + done.stderr, time.perf_counter() - started


def _last_rate(log: str, pattern: str) -> float:
    rates = re.findall(pattern, log)
    if not rates:
        sys.exit(f"no images/s found in the log:\n{log[-3000:]}")
    return float(rates[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timm-scripts", type=Path, required=True, help="folder with timm's train.py, validate.py")
    parser.add_argument("--model", default="vitprune_tiny_patch4_32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads of every run (OMP_NUM_THREADS)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # both sides alike; on a shared CPU more threads only spin
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="vitprune-speed-") as folder:
        work = Path(folder)
        data = write_digits_folder(work / "digits")
        launcher = work / "launch_timm.py"
        launcher.write_text(LAUNCHER)
        common = ["--model", args.model, "--batch", str(args.batch), "--device", args.device]
        finetune = [python, "-c", "from vitprune_export.cli import main; main()", "finetune", "--data", str(data)]
        finetune += [*common, "--weights", "random", "--epochs", str(args.epochs), "--lr", "2e-3"]
        finetune += ["--workers", str(args.workers), "-o", str(work / "tiny.pt"), "--json"]
        log, _ = _run(finetune)
        summary = json.loads(log[log.index("{") : log.rindex("}") + 1])
        ours_train = summary["images_per_second"][-1]

        train = [python, str(launcher), str(args.timm_scripts / "train.py"), str(data), "--model", args.model]
        train += ["--num-classes", "10", "--epochs", str(args.epochs), "-b", str(args.batch)]
        train += ["-j", str(args.workers), "--device", args.device, "--opt", "adamw", "--lr", "2e-3"]
        train += ["--warmup-epochs", "0", "--no-prefetcher", "--log-interval", "1", "--val-split", "val"]
        train += ["--output", str(work / "timm"), "--input-size", *map(str, input_size(args.model))]
        log, _ = _run(train)
        timm_train = _last_rate(log, r"\(\s*[\d.]+s,\s*([\d.]+)/s\)")

        evaluate = [python, "-c", EVAL_SNIPPET, args.model, str(work / "tiny.pt"), str(data), str(args.batch)]
        evaluate += [str(args.workers), args.device]
        log, _ = _run(evaluate)
        ours_eval = float(log.strip().splitlines()[-1])

        validate = [python, str(launcher), str(args.timm_scripts / "validate.py"), str(data), "--split", "val"]
        validate += ["--model", args.model, "--num-classes", "10", "-b", str(args.batch), "-j", str(args.workers)]
        validate += ["--device", args.device, "--no-prefetcher", "--log-freq", "1"]
        validate += ["--checkpoint", str(work / "timm_weights.pt"), "--input-size", *map(str, input_size(args.model))]
        export_state_dict(work / "tiny.pt", work / "timm_weights.pt")
        log, _ = _run(validate)
        timm_eval = _last_rate(log, r",\s*([\d.]+)/s\)")
    print(
        f"model {args.model}, batch {args.batch}, {args.workers} loader process(es), device {args.device}, "
        f"{args.threads} thread(s)"
    )
    print(
        f"training   vitprune {ours_train:8.1f} img/s   timm train.py    {timm_train:8.1f} img/s   ratio {ours_train / timm_train:.2f}"
    )
    print(
        f"evaluation vitprune {ours_eval:8.1f} img/s   timm validate.py {timm_eval:8.1f} img/s   ratio {ours_eval / timm_eval:.2f}"
    )


EVAL_SNIPPET = """
import sys, time, torch
from vitprune_export.accuracy.data import Preprocessing, load_dataset
from vitprune_export.accuracy.evaluate import predict_torch
from vitprune_export.pruning.models import create_model
model_name, weights, data, batch, workers, device = sys.argv[1:7]
model = create_model(model_name, weights).to(device)
dataset = load_dataset(data, "test", Preprocessing.for_model(model))
started = time.perf_counter()
classes, labels = predict_torch(model, dataset, int(batch), progress=False, workers=int(workers))
print(len(labels) / (time.perf_counter() - started))
"""

if __name__ == "__main__":
    main()
