"""``gradeclip toyworld generate | train | evaluate | benchmark``: the toy world's dataset, the toy CLIP, its
model-card metrics and the same scores for any explanation method from the command line. Heavy imports happen
inside the commands so that ``gradeclip --help`` stays fast."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from gradeclip.cli_checks import OutputError, count, positive_number, writable_file, writable_folder

# The toy CLIP's open_clip architecture name (= gradeclip.toyworld.train.MODEL_NAME, tested); spelled out here so
# that building the parser does not import torch.
MODEL_NAME = "gradeclip-toy-ViT"
# The held-out splits (gradeclip.toyworld.evaluate.SPLIT_SEEDS) and the benchmark's built-in methods
# (evaluate.BUILTIN_METHODS), likewise spelled out; tests check both against the evaluator.
SPLITS = ("test", "validation")
BUILTIN_METHOD_NAMES = ("grad-eclip", "grad-eclip-multi", "raw-attention", "input-gradient", "gradient-x-input")


def generate_command(args: argparse.Namespace) -> int:
    from gradeclip.toyworld.dataset import write_dataset
    from gradeclip.toyworld.layout import ToyWorldConfig

    try:
        config = ToyWorldConfig(image_size=args.image_size, min_objects=args.min_objects,
                                max_objects=args.max_objects)
        writable_folder(args.out)
        path = write_dataset(args.out, n_scenes=args.n, seed=args.seed, split=args.split, config=config,
                             start_index=args.start_index)
    except (ValueError, RuntimeError) as err:  # config values, output folder, a layout that cannot be placed
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} scenes to {args.out} ({path})")
    return 0


def _model_name(args: argparse.Namespace) -> str:
    """--model-config FILE registers that config and names the model after it; otherwise --model (or the toy)."""
    if getattr(args, "model_config", None):
        from gradeclip.models import register_model_config_file

        return register_model_config_file(args.model_config)
    return getattr(args, "model", MODEL_NAME)


def train_command(args: argparse.Namespace) -> int:
    from gradeclip.models import ModelLoadError
    from gradeclip.toyworld.train import TrainRecipe, train_toy_clip

    if args.minutes is None and args.steps is None:
        print("error: give --minutes and/or --steps", file=sys.stderr)
        return 2
    try:
        writable_file(args.out)  # before the run, not after it
    except OutputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.getLogger("gradeclip").setLevel(logging.INFO)
    try:
        recipe = TrainRecipe(model_name=_model_name(args))
        result = train_toy_clip(args.out, steps=args.steps, minutes=args.minutes, seed=args.seed,
                                recipe=recipe, threads=args.threads)
    except (ValueError, ModelLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {result.path}: {result.steps} steps in {result.seconds:.0f} s "
          f"(final loss {result.metadata['final_loss']:.3f})")
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    from gradeclip.models import ModelLoadError, load_clip
    from gradeclip.toyworld.evaluate import evaluate_clip, write_json, zero_shot_reference

    try:
        writable_file(args.out)
        if args.reference:
            writable_file(args.reference, "--reference")
        clip = load_clip(_model_name(args), args.checkpoint)
    except (OutputError, ModelLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        metrics = evaluate_clip(clip, n_scenes=args.n_scenes, threads=args.threads, spatial=args.spatial,
                                image_layers=args.image_layers, split=args.split)
    except ValueError as err:  # e.g. more --image-layers than the model has
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_json(metrics, args.out)
    if args.reference:
        write_json(zero_shot_reference(clip), args.reference)
        print(f"wrote {args.reference}")
    summary = {"zero_shot": {c: round(metrics["zero_shot"][c]["accuracy"]["value"], 3)
                             for c in ("color", "shape", "size")}}
    maps = ("grad_eclip", "raw_attention", "input_gradient", "gradient_x_input", "uniform")
    for heads in ("single", "multi"):
        block = metrics["localisation"][heads]
        summary[heads] = {name: {m: round(block[name][m]["value"], 3) for m in ("pointing", "energy_share")}
                          for name in maps}
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}; targets met: {all(metrics['targets_met'].values())}")
    return 0


def _import_method(spec: str):
    """A built-in method's name, or MODULE:FUNCTION resolved by the standard library's ``pkgutil.resolve_name``."""
    import pkgutil

    from gradeclip.toyworld.evaluate import BUILTIN_METHODS

    if spec in BUILTIN_METHODS:
        return BUILTIN_METHODS[spec]
    if ":" not in spec:
        raise ValueError(f"--method {spec!r}: expected one of {sorted(BUILTIN_METHODS)} or MODULE:FUNCTION")
    # the `gradeclip` console script runs with its own folder first on sys.path, not the working directory, so a
    # module of the user's (my_saliency.py beside them) would not import as it does under `python -m`
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        function = pkgutil.resolve_name(spec)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"--method {spec!r}: {err}") from err
    if not callable(function):
        raise ValueError(f"--method {spec!r} is not callable")
    return function


def benchmark_command(args: argparse.Namespace) -> int:
    import torch

    from gradeclip.models import ModelLoadError, load_clip
    from gradeclip.toyworld.evaluate import benchmark_explanations, write_json

    try:
        writable_file(args.out)
        explain = _import_method(args.method)
        clip = load_clip(_model_name(args), args.checkpoint)
    except (ValueError, ModelLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = benchmark_explanations(explain, clip, n_scenes=args.n_scenes, split=args.split,
                                        batch_size=args.batch_size, name=args.method)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_json(result, args.out)
    for failure in result["failed"]:
        print(f"warning: scene {failure['scene']} ({failure['text']!r}): {failure['error']}; not scored",
              file=sys.stderr)
    if not result["n_scored"]:
        print(f"error: no map of {args.method} could be scored; see {args.out}", file=sys.stderr)
        return 1
    summary = {name: {m: round(result[name][m]["value"], 3) for m in ("pointing", "energy_share")}
               for name in ("map", "uniform")}
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out} ({result['n_scored']} of {result['n_scenes']} scenes scored)")
    return 0


def add_toyworld_commands(subparsers) -> argparse.ArgumentParser:
    """Add the ``toyworld`` command group to the ``gradeclip`` parser's subparsers."""
    group = subparsers.add_parser("toyworld", help="toy-world scenes, the toy CLIP (train, evaluate), any method's benchmark")
    commands = group.add_subparsers(dest="toyworld_command", required=True)

    gen = commands.add_parser("generate", help="render toy scenes with masks and a CLEVR scenes JSON")
    gen.add_argument("--out", required=True, help="output folder (CLEVR layout)")
    gen.add_argument("--n", type=count(0), required=True, help="number of scenes")
    gen.add_argument("--seed", type=count(0), required=True)
    gen.add_argument("--split", default="train")
    gen.add_argument("--image-size", type=count(32), default=128)
    gen.add_argument("--min-objects", type=count(1), default=1)
    gen.add_argument("--max-objects", type=count(1), default=5)
    gen.add_argument("--start-index", type=count(0), default=0)
    gen.set_defaults(func=generate_command)

    tr = commands.add_parser("train", help="train the toy CLIP on the CPU")
    tr.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    tr.add_argument("--minutes", type=positive_number,
                    help="wall-clock budget (the steps that fit are measured early on: keep the machine idle)")
    tr.add_argument("--steps", type=count(1), help="number of steps (reproduces a --minutes run exactly)")
    tr.add_argument("--seed", type=count(0), default=0)
    tr.add_argument("--threads", type=count(1), default=2)
    tr.add_argument("--model-config", metavar="JSON",
                    help="train this open_clip model config (e.g. a copy of gradeclip/model_configs/"
                         f"{MODEL_NAME}.json with one field changed) instead of the toy CLIP; the model is named "
                         "after the file")
    tr.set_defaults(func=train_command)

    ev = commands.add_parser("evaluate", help="model-card metrics of a toy checkpoint on held-out scenes")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--out", required=True, help="metrics JSON to write")
    ev.add_argument("--model", default=MODEL_NAME, help="open_clip architecture of the checkpoint")
    ev.add_argument("--model-config", metavar="JSON",
                    help="the checkpoint's open_clip model config file (what `train --model-config` trained); "
                         "replaces --model")
    ev.add_argument("--n-scenes", type=count(1), default=1000)
    ev.add_argument("--reference", help="also write the zero-shot predictions on 12 held-out scenes that the tests "
                                        "reproduce (data/toy_clip/zero_shot_reference.json)")
    ev.add_argument("--threads", type=count(1), default=2)
    ev.add_argument("--spatial", default="loosened", choices=("loosened", "softmax", "none"),
                    help="Grad-ECLIP's spatial weight: the paper's loosened attention, or an ablation")
    ev.add_argument("--image-layers", type=count(1), default=1,
                    help="sum Grad-ECLIP's maps over this many last image blocks (1: the paper; more: an ablation)")
    ev.add_argument("--split", default="test", choices=SPLITS,
                    help="held-out scenes to use: test (the model card's numbers) or validation (for comparing "
                         "recipes and training seeds without touching the test scenes)")
    ev.set_defaults(func=evaluate_command)

    bench = commands.add_parser(
        "benchmark", help="score any explanation method's maps on the held-out toy scenes (pointing, energy share)")
    bench.add_argument("--method", required=True,
                       help=f"{', '.join(BUILTIN_METHOD_NAMES)}, or MODULE:FUNCTION: a function "
                            "(clip, pixels, texts) -> (B, h, w) maps (see gradeclip.toyworld.evaluate.ExplainFunction)")
    bench.add_argument("--checkpoint", required=True)
    bench.add_argument("--out", required=True, help="scores JSON to write")
    bench.add_argument("--model", default=MODEL_NAME, help="open_clip architecture of the checkpoint")
    bench.add_argument("--model-config", metavar="JSON",
                       help="the checkpoint's open_clip model config file (as for evaluate); replaces --model")
    bench.add_argument("--n-scenes", type=count(1), default=1000)
    bench.add_argument("--batch-size", type=count(1), default=32)
    bench.add_argument("--threads", type=count(1), default=2)
    bench.add_argument("--split", default="test", choices=SPLITS)
    bench.set_defaults(func=benchmark_command)
    return group
