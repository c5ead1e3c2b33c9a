"""lock/plan.py pinned down: the input-hash recipe, every reason and progress word, --update edges.

Written against the survivors of `nox -s mutants` (docs/mutation.md): each test fixes a result
exactly, so that a change in how the plan is built cannot pass unnoticed.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from envspec.lock.plan import INPUT_HASH_VERSION, Action, LockInput, LockPlanError, PlanItem, Stored, plan, staleness

ENV = b"name: sd\ndependencies: [python=3.11]\n"
VPKG = b'subdirs: {linux-64: {packages: {__cuda: "12.9"}}}\n'
CHANNELS = ("https://conda.anaconda.org/conda-forge", "file:///srv/bio")

# The digest every committed lockfile carries for these inputs. If this literal has to change,
# every lockfile in every checkout becomes stale: bump INPUT_HASH_VERSION and say so in the release notes.
# (Version 2: channels are the canonical URLs, mirrors left out; version 1 gave sha256:cae711b1...)
KNOWN_DIGEST = "sha256:3246173389daadf2d1baf63bf854f119c79ef5d74b886edc30071009050414b8"


def _known() -> LockInput:
    return LockInput("linux-cuda", "linux-64", ENV, VPKG, CHANNELS)


def _inp(target: str, requested: frozenset[str] = frozenset()) -> LockInput:
    return LockInput(target, "linux-64", b"e\n", b"v\n", ("c",), requested)


def _fresh(inp: LockInput, packages: set[str] | None = None) -> Stored:
    return Stored(inp.digest(), inp.digest(), None if packages is None else frozenset(packages))


STALE = Stored("sha256:old", "sha256:old", frozenset({"diffusers", "tqdm"}))

# ------------------------------------------------------------------------------- the input hash


def test_input_hash_is_a_known_digest() -> None:
    assert INPUT_HASH_VERSION == 2
    assert _known().digest() == KNOWN_DIGEST


def test_input_hash_recipe_is_sha256_of_sorted_compact_json() -> None:
    components = {
        "version": 2,
        "target": "linux-cuda",
        "subdir": "linux-64",
        "environment": hashlib.sha256(ENV).hexdigest(),
        "virtual_packages": hashlib.sha256(VPKG).hexdigest(),
        "channels": list(CHANNELS),
    }
    assert _known().components() == components
    canonical = (
        '{"channels":["https://conda.anaconda.org/conda-forge","file:///srv/bio"],'
        f'"environment":"{components["environment"]}","subdir":"linux-64","target":"linux-cuda","version":2,'
        f'"virtual_packages":"{components["virtual_packages"]}"}}'
    )
    assert json.dumps(components, sort_keys=True, separators=(",", ":")) == canonical
    assert "sha256:" + hashlib.sha256(canonical.encode()).hexdigest() == KNOWN_DIGEST


def test_input_hash_normalises_crlf_only() -> None:
    crlf = LockInput("linux-cuda", "linux-64", ENV.replace(b"\n", b"\r\n"), VPKG.replace(b"\n", b"\r\n"), CHANNELS)
    assert crlf.digest() == KNOWN_DIGEST
    lone_cr = LockInput("linux-cuda", "linux-64", ENV.replace(b"\n", b"\r"), VPKG, CHANNELS)
    assert lone_cr.digest() != KNOWN_DIGEST


def test_input_hash_keeps_channel_order_and_ignores_requested() -> None:
    swapped = LockInput("linux-cuda", "linux-64", ENV, VPKG, CHANNELS[::-1])
    assert swapped.digest() != KNOWN_DIGEST
    requested = LockInput("linux-cuda", "linux-64", ENV, VPKG, CHANNELS, frozenset({"python"}))
    assert requested.digest() == KNOWN_DIGEST


# ------------------------------------------------------------------------------- reasons and words


def test_action_words_shown_in_progress() -> None:
    assert [a.value for a in Action] == ["solve", "update", "up to date"]


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        (Stored(), "no lockfile"),
        (Stored("sha256:x", None), "conda-lock file missing or without envspec input hash"),
        (Stored(None, "sha256:x"), "explicit .lock missing or without envspec input hash"),
        (Stored("sha256:x", "sha256:y"), "its two lockfiles disagree (an interrupted write?)"),
        (
            Stored("sha256:y", "sha256:y"),
            "inputs changed (environment file, virtual packages, channels or --exclude-newer)",
        ),
        (Stored("sha256:x", "sha256:x"), None),
    ],
)
def test_staleness_reason_exactly(stored: Stored, reason: str | None) -> None:
    assert staleness("sha256:x", stored) == reason


def test_plan_items_exactly() -> None:
    a, b, c = _inp("a"), _inp("b"), _inp("c")
    items = plan([a, b, c], {"a": STALE, "c": _fresh(c)})  # b: nothing stored
    assert items == [
        PlanItem(
            "a",
            Action.SOLVE,
            "inputs changed (environment file, virtual packages, channels or --exclude-newer)",
            a.digest(),
        ),
        PlanItem("b", Action.SOLVE, "no lockfile", b.digest()),
        PlanItem("c", Action.SKIP, "inputs unchanged", c.digest()),
    ]


def test_plan_update_items_exactly() -> None:
    a, b = _inp("a"), _inp("b")
    stored = {"a": _fresh(a, {"diffusers", "tqdm", "numpy"}), "b": _fresh(b, {"numpy"})}
    items = plan([a, b], stored, update=["tqdm", "diffusers", "tqdm"])  # duplicates collapse, order kept
    assert items == [
        PlanItem("a", Action.UPDATE, "update tqdm, diffusers", a.digest(), ("tqdm", "diffusers")),
        PlanItem("b", Action.SKIP, "no tqdm, diffusers in its lock", b.digest()),
    ]


# ------------------------------------------------------------------------------- --update edges


def test_update_of_a_package_only_stale_targets_hold_plans_a_full_solve() -> None:
    """The stale target is re-solved in full (its inputs changed), which updates the package too."""
    a, b = _inp("a"), _inp("b")
    items = plan([a, b], {"a": STALE, "b": _fresh(b, {"numpy"})}, update=["tqdm"])
    assert [(i.target, i.action, i.update) for i in items] == [("a", Action.SOLVE, ()), ("b", Action.SKIP, ())]
    assert items[1].reason == "no tqdm in its lock"


def test_update_with_every_target_stale_solves_all() -> None:
    a, b = _inp("a"), _inp("b")
    items = plan([a, b], {"a": STALE}, update=["nosuch"])
    assert [(i.target, i.action) for i in items] == [("a", Action.SOLVE), ("b", Action.SOLVE)]


def test_update_of_an_unknown_package_names_each_missing_one() -> None:
    a = _inp("a")
    with pytest.raises(LockPlanError) as err:
        plan([a], {"a": _fresh(a, {"numpy"})}, update=["numpy", "foo", "bar"])
    assert str(err.value) == "--update foo bar: not a package of any selected target's lockfile"
    assert isinstance(err.value, ValueError)


def test_update_with_unread_packages_finds_nothing() -> None:
    a = _inp("a")
    with pytest.raises(LockPlanError, match=r"^--update numpy: not a package"):
        plan([a], {"a": _fresh(a)}, update=["numpy"])  # packages=None: the lock was not read


def test_update_of_indirect_dependencies_message() -> None:
    a = _inp("a", frozenset({"diffusers"}))
    with pytest.raises(LockPlanError) as err:
        plan([a], {"a": _fresh(a, {"diffusers", "colorama", "tqdm"})}, update=["colorama", "tqdm"])
    assert str(err.value) == (
        "--update colorama tqdm: target a does not request it directly, and conda-lock can only update "
        "packages named in the environment file (add it to envspec.yml, or re-lock)"
    )


def test_update_without_requested_names_is_not_checked_for_indirect() -> None:
    a = _inp("a")  # requested unknown (empty): conda-lock decides
    items = plan([a], {"a": _fresh(a, {"colorama"})}, update=["colorama"])
    assert items == [PlanItem("a", Action.UPDATE, "update colorama", a.digest(), ("colorama",))]
