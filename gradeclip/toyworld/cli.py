"""``gradeclip toyworld generate | train | evaluate | benchmark | compare``: the toy world's dataset, the toy CLIP, its
model-card metrics, the same scores for any explanation method, and every registered method as one table. Heavy imports happen
inside the commands so that ``gradeclip --help`` stays fast."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from gradeclip.cli_checks import OutputError, count, positive_number, writable_file, writable_folder
from gradeclip.options import HEADS, SPATIAL

# The toy CLIP's open_clip architecture name (= gradeclip.toyworld.train.MODEL_NAME, tested); spelled out here so
# that building the parser does not import torch.
MODEL_NAME = "gradeclip-toy-ViT"
# The held-out splits (gradeclip.toyworld.evaluate.SPLIT_SEEDS) and the registered methods
# (gradeclip.baselines.METHODS), likewise spelled out; tests check both against their owners.
SPLITS = ("test", "validation")
BUILTIN_METHOD_NAMES = ("grad-eclip", "grad-eclip-multi", "raw-attention", "raw-attention-single", "rollout",
                        "grad-cam", "grad-cam-single", "game", "maskclip", "clip-surgery", "m2ib", "rise", "legrad",
                        "attention-eclip", "input-gradient", "gradient-x-input")


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
    for heads in HEADS:
        block = metrics["localisation"][heads]
        summary[heads] = {name: {m: round(block[name][m]["value"], 3) for m in ("pointing", "energy_share")}
                          for name in maps}
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}; targets met: {all(metrics['targets_met'].values())}")
    return 0


def parse_method_options(pairs) -> dict:
    """``--method-option KEY=VALUE`` pairs as keyword arguments: VALUE read as a Python literal (500, 0.1, -2,
    True), otherwise kept as a string."""
    import ast

    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--method-option {pair!r}: expected KEY=VALUE (e.g. n_masks=500)")
        try:
            options[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key.strip()] = value
    return options


def benchmark_command(args: argparse.Namespace) -> int:
    import torch

    from gradeclip.baselines import check_method, resolve_method
    from gradeclip.models import ModelLoadError, load_clip
    from gradeclip.toyworld.evaluate import benchmark_explanations, write_json

    try:
        writable_file(args.out)
        options = parse_method_options(args.method_option)
        explain = resolve_method(args.method, options, flag="--method")
        clip = load_clip(_model_name(args), args.checkpoint)
        check_method(args.method, clip, options)
    except (ValueError, ModelLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = benchmark_explanations(explain, clip, n_scenes=args.n_scenes, split=args.split,
                                        batch_size=args.batch_size, name=args.method)
    except ValueError as err:  # an unsupported architecture, an unavailable method, a method's bad option value
        print(f"error: {err}", file=sys.stderr)
        return 2
    result["method_options"] = options
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


def compare_command(args: argparse.Namespace) -> int:
    from gradeclip.models import ModelLoadError, load_clip
    from gradeclip.toyworld.comparison import compare_methods, markdown_table
    from gradeclip.toyworld.evaluate import write_json

    if args.table_from:
        try:
            comparison = json.loads(open(args.table_from, encoding="utf-8").read())
        except (OSError, json.JSONDecodeError) as err:
            print(f"error: {args.table_from}: {err}", file=sys.stderr)
            return 2
        print(markdown_table(comparison), end="")
        return 0
    if not (args.checkpoint and args.out):
        print("error: give --checkpoint and --out (or --table-from JSON)", file=sys.stderr)
        return 2
    try:
        options: dict = {}
        for pair in args.method_option or ():
            name, sep, option = pair.partition(":")
            if not sep:
                raise ValueError(f"--method-option {pair!r}: expected METHOD:KEY=VALUE (e.g. rise:n_masks=500)")
            options.setdefault(name, {}).update(parse_method_options([option]))
        methods = args.methods.split(",") if args.methods else None
        unknown = [name for name in methods or () if name not in BUILTIN_METHOD_NAMES]
        if unknown:
            raise ValueError(f"--methods: unknown method {unknown[0]!r}; expected names from "
                             f"{', '.join(BUILTIN_METHOD_NAMES)}")
        scenes: dict = {}
        for pair in args.method_scenes or ():
            name, sep, value = pair.partition("=")
            if not sep or not value.isdigit() or int(value) < 1:
                raise ValueError(f"--method-scenes {pair!r}: expected METHOD=N with N >= 1 (e.g. rise=200)")
            scenes[name] = int(value)
        writable_file(args.out)
        clip = load_clip(_model_name(args), args.checkpoint)
    except (ValueError, ModelLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    comparison = compare_methods(clip, n_scenes=args.n_scenes, split=args.split, batch_size=args.batch_size,
                                 methods=methods, options=options, scenes=scenes)
    write_json(comparison, args.out)
    print(markdown_table(comparison), end="")
    failed = {name: r["error"] for name, r in comparison["methods"].items() if "error" in r}
    for name, error in failed.items():
        print(f"warning: {name} not run: {error}", file=sys.stderr)
    print(f"wrote {args.out} ({len(comparison['methods']) - len(failed)} of {len(comparison['methods'])} methods "
          "scored)")
    return 1 if failed else 0


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
    ev.add_argument("--spatial", default="loosened", choices=SPATIAL,
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
                       help=f"{', '.join(BUILTIN_METHOD_NAMES)} (gradeclip.baselines), or MODULE:FUNCTION: a "
                            "function (clip, pixels, texts) -> (B, h, w) maps (see gradeclip.baselines)")
    bench.add_argument("--method-option", action="append", metavar="KEY=VALUE",
                       help="an option of the registered method (repeatable), e.g. n_masks=500 for rise, steps=5 for "
                            "m2ib; see the method's function in gradeclip.baselines")
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

    comp = commands.add_parser(
        "compare", help="every registered method on the held-out toy scenes, as one table (the model card's)")
    comp.add_argument("--checkpoint")
    comp.add_argument("--out", help="JSON to write (every method's benchmark scores)")
    comp.add_argument("--model", default=MODEL_NAME, help="open_clip architecture of the checkpoint")
    comp.add_argument("--model-config", metavar="JSON", help="the checkpoint's open_clip model config file")
    comp.add_argument("--methods", help="comma-separated registered names (default: every method of the table)")
    comp.add_argument("--method-option", action="append", metavar="METHOD:KEY=VALUE",
                      help="an option of one method (repeatable); the table runs rise:n_masks=500 unless given")
    comp.add_argument("--n-scenes", type=count(1), default=1000)
    comp.add_argument("--method-scenes", action="append", metavar="METHOD=N",
                      help="score METHOD on the first N scenes only (repeatable); the table runs rise=200 and "
                           "m2ib=200 unless given")
    comp.add_argument("--batch-size", type=count(1), default=32)
    comp.add_argument("--threads", type=count(1), default=2)
    comp.add_argument("--split", default="test", choices=SPLITS)
    comp.add_argument("--table-from", metavar="JSON", help="print the markdown table of an earlier run's JSON and exit")
    comp.set_defaults(func=compare_command)
    return group
