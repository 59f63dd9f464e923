"""Every case of the corpus: exit code, exactly one `error:` line on stderr, no traceback, and
every watched folder as it was (see the package's docstring)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.bad_inputs.cli import Outcome, in_process, isolated
from tests.bad_inputs.corpus import CASES, Case
from tests.bad_inputs.workspace import Workspace
from tests.fingerprint import changes, tree_fingerprint


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_input_is_one_line_an_exit_code_and_nothing_changed(
    case: Case,
    workspace: Workspace,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(workspace.root)  # a default output path lands where it is watched
    monkeypatch.delenv("ATMOREP_CHECKPOINT", raising=False)
    for setup in case.setup:
        setup(workspace)
    args = workspace.format(case.args)
    roots = workspace.watched()
    before = tree_fingerprint(*roots)
    outcome = isolated(args, workspace.root) if case.isolated else in_process(args, capfd)
    problems = _problems(case, outcome) + changes(before, tree_fingerprint(*roots))
    assert not problems, "\n".join(problems)


def _problems(case: Case, outcome: Outcome) -> list[str]:
    """What is wrong with the outcome, each in a line: all at once, for whoever fixes it."""
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]  # as a mail shows it
    found = []
    if outcome.code != case.code:
        found.append(f"exit {outcome.code}, expected {case.code}")
    if "Traceback" in outcome.stderr:
        found.append(f"a traceback{_last_frame(outcome.stderr)}: {lines[-1]}")
    elif len(lines) != 1 or not lines[0].startswith("error:"):
        found.append(f"{len(lines)} lines on stderr, not one error line: {lines[:4]}")
    elif missing := [p for p in case.words if not re.search(p, lines[0])]:
        found.append(f"{missing} not in: {lines[0]}")
    return found


def _last_frame(traceback_text: str) -> str:
    """Where the traceback ends, e.g. ` at products/experience.py:275 in store_values`."""
    frames = re.findall(r'File "(.+)", line (\d+), in (\S+)', traceback_text)
    if not frames:
        return ""
    file, number, function = frames[-1]
    return f" at {Path(file).parent.name}/{Path(file).name}:{number} in {function}"
