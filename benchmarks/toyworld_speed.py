"""How many toy-world scenes per minute one core renders (and writes to disk).

    python benchmarks/toyworld_speed.py [--scenes 1000] [--image-size 128]
"""

import argparse
import tempfile
import time

from gradeclip.toyworld import ToyWorldConfig, generate_scenes, write_dataset


def scenes_per_minute(run, n_scenes: int) -> float:
    start = time.perf_counter()
    run()
    return n_scenes / (time.perf_counter() - start) * 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=ToyWorldConfig().image_size)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = ToyWorldConfig(image_size=args.image_size)

    in_memory = scenes_per_minute(
        lambda: sum(1 for _ in generate_scenes(args.seed, args.scenes, config=config)), args.scenes
    )
    with tempfile.TemporaryDirectory() as out_dir:
        to_disk = scenes_per_minute(
            lambda: write_dataset(out_dir, args.scenes, args.seed, config=config), args.scenes
        )
    print(f"{args.scenes} scenes at {args.image_size}px, one process:")
    print(f"  generate (image + masks + record): {in_memory:,.0f} scenes/minute")
    print(f"  write_dataset (PNGs + JSON):       {to_disk:,.0f} scenes/minute")


if __name__ == "__main__":
    main()
