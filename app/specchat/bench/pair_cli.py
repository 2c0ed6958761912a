"""`specchat bench make-pair`: plan, calibrate, write and check a calibrated target."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from specchat.bench.make_pair import MakePairError, plan_for_cost, read_draft, write_target


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_pair(args: argparse.Namespace) -> int:
    draft: Path = args.draft
    out: Path = args.out
    if not 0.0 < args.agreement <= 1.0:
        raise MakePairError(f"--agreement must be in (0, 1] (got {args.agreement})")
    if args.epsilon is not None and args.epsilon < 0:
        raise MakePairError(f"--epsilon must be >= 0 (got {args.epsilon})")
    if args.calib_tokens < 4:
        raise MakePairError(f"--calib-tokens must be at least 4 (got {args.calib_tokens})")
    if out.exists() and not args.force:
        raise MakePairError(f"{out} exists (use --force to overwrite)")
    if out.resolve() == draft.resolve():
        raise MakePairError("OUT.gguf must not be the draft itself")
    if not out.parent.is_dir():
        raise MakePairError(f"folder does not exist: {out.parent}")
    info = read_draft(draft)
    plan = plan_for_cost(info.n_layers, info.block_params, info.head_params, args.cost)
    _say(f"draft: {info.arch}, {info.n_layers} blocks; target: {plan.block_count} blocks "
         f"(+{plan.n_extra} copies), predicted cost {plan.cost:.2f}× the draft's")

    if args.epsilon is not None:
        delta = args.epsilon
    elif args.agreement >= 1.0:
        delta = 0.0
    else:
        from specchat.bench.calibrate import calibrate_delta

        _say(f"calibrating epsilon for agreement {args.agreement:.2f} on a one-copy proxy...")
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            delta, _ = calibrate_delta(draft, Path(tmp), args.agreement,
                                       n_tokens=args.calib_tokens, n_threads=args.threads,
                                       progress=lambda m: _say(f"  {m}"))
    _say(f"writing {out} (total residual scale per copied block: {delta:.4g})")
    tmp_out = out.with_name(out.name + ".part")
    try:
        write_target(draft, tmp_out, plan.copies, delta)
        tmp_out.replace(out)
    finally:
        tmp_out.unlink(missing_ok=True)
    if not args.no_check:
        from specchat.bench.calibrate import calibration_prompts, measure_agreement

        _say("measuring the pair's greedy agreement...")
        agreement = measure_agreement(draft, out, calibration_prompts(), args.calib_tokens,
                                      args.threads)
        _say(f"measured agreement: {agreement:.3f}")
    print(out)
    return 0
