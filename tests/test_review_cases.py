"""Every defect that the reliability review found (47 of its 118 cases, by case number) has a test that reproduces it,
tagged ``@pytest.mark.review_case(n, ...)``; this test reads the tags from the test sources."""

from __future__ import annotations

import ast
from pathlib import Path

# the review's cases judged defects: data loss, silent wrong results, tracebacks, unclear messages
DEFECTS = {1, 3, 9, 17, 33, 34, 35, 40, 42, 43, 46, 49, 50, 56, 60, 64, 65, 66, 69, 70, 71, 72, 74, 75, 76, 80, 82, 83,
           85, 87, 88, 89, 91, 92, 93, 94, 96, 97, 98, 99, 100, 106, 107, 110, 111, 113, 114}


def tagged_cases(folder: Path) -> dict[int, list[str]]:
    """Case number -> the tests (file::name) whose ``review_case`` marker names it."""
    cases: dict[int, list[str]] = {}
    for path in sorted(folder.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                        and decorator.func.attr == "review_case"):
                    for arg in decorator.args:
                        cases.setdefault(ast.literal_eval(arg), []).append(f"{path.name}::{node.name}")
    return cases


def test_every_defect_of_the_review_has_a_test():
    assert len(DEFECTS) == 47
    cases = tagged_cases(Path(__file__).parent)
    assert sorted(DEFECTS - set(cases)) == []
    assert sorted(set(cases) - DEFECTS) == []          # no tag names a case that was not a defect
