"""`dsd models tiny DIR [--gguf]`: write a tiny random draft/target pair (shared tokenizer,
seeded); with --gguf also as DIR/target.gguf and DIR/draft.gguf (same weights) for llama.cpp."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("models", help="model utilities (tiny test pair)")
    modes = p.add_subparsers(dest="models_cmd", metavar="CMD")
    t = modes.add_parser("tiny", help="write DIR/draft and DIR/target: a tiny Llama pair")
    t.add_argument("dir", help="output directory")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--noise", type=float, default=0.1,
                   help="relative noise added to the target's weights to make the draft")
    t.add_argument("--quiet", action="store_true", help="print nothing but errors")
    t.add_argument("--gguf", action="store_true",
                   help="also write DIR/target.gguf and DIR/draft.gguf (f32, llama.cpp)")
    t.set_defaults(handler=_tiny)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def _tiny(args) -> int:
    from dsd.errors import DsdError
    from dsd.runtime.tiny import write_tiny_pair

    out = Path(args.dir)
    if out.exists() and not out.is_dir():
        raise DsdError(f"{out} exists and is not a directory")
    if not 0.0 <= args.noise <= 10.0:
        raise DsdError("--noise must be in [0, 10]")
    target, draft = write_tiny_pair(out, seed=args.seed, noise=args.noise)
    if args.gguf:
        from dsd.runtime.tiny_gguf import write_tiny_gguf_pair

        gguf_target, gguf_draft = write_tiny_gguf_pair(out, seed=args.seed, noise=args.noise)
    if not args.quiet:
        print(f"wrote target {target} and draft {draft}")
        if args.gguf:
            print(f"wrote target {gguf_target} and draft {gguf_draft}")
    return 0
