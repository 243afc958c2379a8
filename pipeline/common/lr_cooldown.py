"""`lr-cooldown`: a learning-rate cooldown over the last share of a training's wall-time cap (applied by
pipeline/train/train.py). One check of its options, for the training step and for the config's validation before
any task runs."""

OPTIONS = ("lr-cooldown", "lr-cooldown-decays")
DEFAULT_DECAYS = 4
# Marian's own options that the cooldown sets.
SETS = ("lr-decay-strategy", "lr-decay-start", "lr-decay-freq")


def cooldown_problems(options: dict, has_wall_time: bool) -> list[tuple[str, str]]:
    """(option, what is wrong) for a training stage's options, where they give `lr-cooldown` or
    `lr-cooldown-decays`; `has_wall_time`: whether the stage's `after` has a wall-time cap."""
    share, decays = options.get("lr-cooldown"), options.get("lr-cooldown-decays")
    problems = []
    if decays is not None and (isinstance(decays, bool) or not isinstance(decays, int) or decays < 1):
        problems.append(
            ("lr-cooldown-decays", f"{decays!r}: a whole number of learning-rate decays, at least 1")
        )
    elif decays is not None and share is None:
        problems.append(("lr-cooldown-decays", "is set without lr-cooldown (the share of the wall-time cap)"))
    if share is None:
        return problems
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
        problems.append(
            (
                "lr-cooldown",
                f"{share!r}: the share of the wall-time cap to anneal over, between 0 and 1, e.g. 0.3",
            )
        )
    if not has_wall_time:
        problems.append(
            ("lr-cooldown", "is a share of the wall-time cap: give one in `after`, e.g. `after: 10e,20m`")
        )
    if clashing := [key for key in SETS if key in options]:
        them = "it" if len(clashing) == 1 else "them"
        problems.append(("lr-cooldown", f"sets {', '.join(clashing)} itself: remove {them}"))
    try:
        factor = float(options.get("lr-decay") or 0.5)
    except (TypeError, ValueError):
        factor = None
    if factor is None or not 0 < factor < 1:
        shown = options.get("lr-decay") if factor is None else factor
        problems.append(
            ("lr-decay", f"{shown} must be between 0 and 1 for lr-cooldown to lower the learning rate")
        )
    return problems
