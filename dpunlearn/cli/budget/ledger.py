"""``dpunlearn budget ledger``: summarise and replay a ledger file of
:mod:`dpunlearn.accounting.ledger`: the U and D reports, integrity (hash
chain, HMAC with ``--key-file`` / ``--key-env``, ``--expect-head``), torn
tails (``--allow-torn``, ``--repair``). A missing, corrupt or torn ledger
exits 1; bad arguments exit 2."""

from __future__ import annotations

import argparse
import math
import os

from dpunlearn.cli._args import _common
from dpunlearn.cli._output import CLIError, Output, _fmt


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``ledger`` to the ``budget`` subparsers ``sub``."""
    p = sub.add_parser("ledger", help="summarise / replay a ledger file")
    p.add_argument("path")
    p.add_argument(
        "--allow-torn",
        action="store_true",
        help="summarise the complete entries of a file with a torn last line",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="move a torn last line to PATH.torn-OFFSET, then summarise",
    )
    p.add_argument(
        "--pld",
        action="store_true",
        help="also report the D ledger through dp_accounting's PLD",
    )
    p.add_argument(
        "--expect-head",
        metavar="N:HEX",
        help="fail (exit 1) unless the ledger still holds this head after entry "
        "N, as printed earlier: detects deleted last entries and rewrites",
    )
    keys = p.add_mutually_exclusive_group()
    keys.add_argument(
        "--key-file",
        metavar="PATH",
        help="verify every line's HMAC-SHA256 with the key in PATH (one "
        "trailing newline ignored)",
    )
    keys.add_argument(
        "--key-env",
        metavar="NAME",
        help="as --key-file, with the key in environment variable NAME",
    )
    _common(p)
    p.set_defaults(func=_cmd_ledger)


def _cmd_ledger(args) -> Output:
    from dpunlearn.accounting import ledger as L

    key = _ledger_key(args)
    notes = []
    try:
        if args.repair:
            t = L.repair_torn_tail(args.path)
            if t is not None:
                notes.append(
                    f"repaired: {t.length} torn bytes at offset {t.offset} moved "
                    f"to {args.path}.torn-{t.offset}"
                )
        loaded = L.load_ledger(
            args.path,
            allow_torn=args.allow_torn,
            key=key,
            expect_head=args.expect_head,
        )
    except FileNotFoundError:
        raise CLIError(f"ledger not found: {args.path}", 1) from None
    except IsADirectoryError:
        raise CLIError(f"ledger path is a directory: {args.path}", 1) from None
    except (L.LedgerError, TimeoutError) as e:
        raise CLIError(str(e), 1) from None
    setup, summary, got = loaded
    torn, integrity = got.torn_tail, got.integrity
    d = L.summary_to_dict(summary)
    d["path"] = args.path
    d["target"] = {"epsilon": setup.target_epsilon, "delta": setup.target_delta}
    d["dp_budget"] = setup.dp_epsilon
    d["torn_tail"] = (
        None if torn is None else {"offset": torn.offset, "length": torn.length}
    )
    d["integrity"] = {
        **integrity._asdict(),
        "pin": integrity.pin,
        "pinned_head_found": args.expect_head is not None,
    }
    u = summary.unlearning
    rows = [
        ("currency", summary.currency),
        ("entries", summary.num_entries),
        ("releases", summary.num_releases),
        ("retrains", summary.num_retrains),
        ("requests (total)", summary.num_requests),
        ("requests since retrain", summary.requests_since_retrain),
        ("points removed (total)", summary.total_removed),
        ("integrity", _integrity(integrity, args.expect_head is not None)),
        ("head (for --expect-head)", integrity.pin),
    ]
    if summary.dp_method == "exact-gaussian":
        sigma_eff = summary.dp_gaussian_precision**-0.5
        rows.append(
            (
                "D accountant",
                f"exact-gaussian (all releases Gaussian, sigma_eff={_fmt(sigma_eff)})",
            )
        )
    elif summary.dp_method == "rdp" and summary.dp_non_gaussian_releases:
        rows.append(
            (
                "D accountant",
                (
                    f"rdp ({summary.dp_non_gaussian_releases} release(s) with a "
                    "non-Gaussian mechanism)"
                ),
            )
        )
    else:
        rows.append(("D accountant", summary.dp_method))
    table = [
        (
            "U: unlearning certificate (resets on retrain)",
            u.certified,
            u.epsilon,
            u.delta,
            f"{_fmt(u.used)} / {_fmt(u.budget)} {u.unit}",
            u.remaining,
        ),
        (
            "D: DP of all releases (never resets)",
            setup.dp_epsilon is None or summary.dp_epsilon <= setup.dp_epsilon,
            summary.dp_epsilon,
            summary.dp_delta,
            f"{_fmt(summary.dp_epsilon)} / {_fmt(setup.dp_epsilon)} epsilon",
            (setup.dp_epsilon - summary.dp_epsilon)
            if setup.dp_epsilon is not None
            else None,
        ),
    ]
    if summary.dp_method == "exact-gaussian":
        table.append(
            (
                "D via RDP (looser bound, not used)",
                setup.dp_epsilon is None or summary.dp_epsilon_rdp <= setup.dp_epsilon,
                summary.dp_epsilon_rdp,
                summary.dp_delta,
                "-",
                None,
            )
        )
    if args.pld:
        n = 1 + summary.num_entries
        pld = L.dp_epsilon_pld(got.entries[:n], summary.dp_delta)
        table.append(
            (
                "D via PLD (dp_accounting, reporting only)",
                setup.dp_epsilon is None or pld <= setup.dp_epsilon,
                pld,
                summary.dp_delta,
                "-",
                None,
            )
        )
        d["dp"]["epsilon_pld"] = pld if math.isfinite(pld) else "inf"
    if summary.non_private_entries:
        notes.append(
            "D is infinite: entries "
            + ", ".join(map(str, summary.non_private_entries))
            + " declare no DP mechanism."
        )
    code = 0
    if torn is not None:
        notes.append(
            f"warning: torn last line at byte offset {torn.offset} "
            f"({torn.length} bytes) not replayed; --repair sets it aside."
        )
    return Output(
        f"Ledger {args.path}",
        rows,
        d,
        tables=[
            (
                "",
                ("ledger", "ok", "epsilon", "delta", "used / budget", "remaining"),
                table,
            )
        ],
        code=code,
        notes=notes,
    )


_MAX_KEY_FILE = 1 << 16


def _ledger_key(args) -> bytes | None:
    """The MAC key of ``--key-file`` (one trailing newline dropped) or
    ``--key-env``; bad input here exits 2, before the ledger is read."""
    if args.key_env is not None:
        value = os.environ.get(args.key_env)
        if not value:
            raise CLIError(f"environment variable {args.key_env} is not set")
        return value.encode("utf-8")
    if args.key_file is None:
        return None
    try:
        with open(args.key_file, "rb") as f:
            key = f.read(_MAX_KEY_FILE + 1)  # bounded: /dev/zero is not a key
    except OSError as e:
        raise CLIError(f"cannot read key file {args.key_file}: {e.strerror}") from None
    if len(key) > _MAX_KEY_FILE:
        raise CLIError(f"key file {args.key_file} is over {_MAX_KEY_FILE} bytes")
    return key.removesuffix(b"\n").removesuffix(b"\r")


def _integrity(i, pinned: bool) -> str:
    if i.chain == "none":
        text = "unchained (written before hash chaining: edits are not detected)"
    elif i.unchained_entries:
        text = (
            f"sha256 chain from entry {i.unchained_entries + 1} (it covers the "
            f"{i.unchained_entries} earlier entries)"
        )
    else:
        text = "sha256 chain"
    text += {
        "verified": ", HMAC-SHA256 verified",
        "unverified": ", HMAC-SHA256 not verified (no key given)",
        "none": "",
    }[i.mac]
    return text + (", pinned head found" if pinned else "")
