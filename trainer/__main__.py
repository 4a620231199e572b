"""``python -m trainer {train,evaluate,export,index} ...``"""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType

from app.exceptions import LookalikeError


def _commands() -> dict[str, ModuleType]:
    from trainer import evaluate, export, index, train

    return {"train": train, "evaluate": evaluate, "export": export, "index": index}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        "python -m trainer",
        description="Lookalike's trainer: fine-tune a backbone for retrieval, evaluate it "
                    "through the app's search, export it for the app, index a gallery with it.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module in _commands().items():
        sub = module.get_args_parser(add_help=False)
        commands.add_parser(name, parents=[sub], help=sub.description,
                            description=sub.description)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = get_args_parser().parse_args(argv)
    try:
        _commands()[args.command].main(args)
    except (LookalikeError, FileNotFoundError, ValueError) as exc:
        message = exc.message if isinstance(exc, LookalikeError) else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
