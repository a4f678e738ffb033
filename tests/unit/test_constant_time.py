"""Secrets, tokens and signatures are never compared with == or !=: only hmac.compare_digest, or a database
lookup by the SHA-256 of the token (which says nothing about how much of a guess was right)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from caseconf.security import sign, signature_matches

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("caseconf", "agencies", "meetings", "notifications", "flows", "web")
SECRET_NAME = re.compile(r"token|secret|signature|digest|password|csrf|hmac|session_hash|api_key", re.IGNORECASE)


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_name(node.func)}()"
    if isinstance(node, ast.Subscript):
        return f"{_name(node.value)}[]"
    return ""


def _is_column(node: ast.AST) -> bool:
    """Model.column (a SQL comparison, e.g. ApiToken.token_hash == token_hash(raw)), not a value in memory."""
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id[:1].isupper()


def _is_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant)


def suspicious_comparisons() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Compare):
                    continue
                operands = [node.left, *node.comparators]
                if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                    continue
                if any(_is_column(o) for o in operands) or any(_is_constant(o) for o in operands):
                    continue  # a SQL lookup by hash, or a check against None / a literal
                names = [_name(o) for o in operands]
                if any(SECRET_NAME.search(n) for n in names):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {' vs '.join(names)}")
    return found


def test_no_secret_is_compared_with_equals():
    assert suspicious_comparisons() == []


def test_the_checker_would_notice_one():
    tree = ast.parse("if submitted_token == expected_token:\n    pass\n")
    compare = next(n for n in ast.walk(tree) if isinstance(n, ast.Compare))
    assert SECRET_NAME.search(_name(compare.left)) and not _is_column(compare.left)


def test_signatures_are_checked_in_constant_time():
    signature = sign("k" * 40, "cookie")
    assert signature_matches("k" * 40, "cookie", signature)
    assert not signature_matches("k" * 40, "cookie", signature[:-1] + ("0" if signature[-1] != "0" else "1"))
    assert not signature_matches("k" * 40, "other", signature)
