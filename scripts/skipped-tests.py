#!/usr/bin/env python3
"""Prints every test a ctest run skipped, with the reason the test gave.

usage: scripts/skipped-tests.py JUNIT_XML   (from ctest --output-junit JUNIT_XML)

ctest itself prints only "Skipped". Its JUnit report keeps each test's output: a GoogleTest case
that called GTEST_SKIP() << reason printed "<file>:<line>: Skipped" and then the reason; a script
skipped through SKIP_RETURN_CODE printed its reason as its last line. Exits 1 if a skipped test
gave no reason (the project's rule: a skipped test says why), 0 otherwise.
"""
import sys
import xml.etree.ElementTree as ET


def gtest_reason(lines):
    """The message after the first "<file>:<line>: Skipped" line, up to gtest's [  SKIPPED ]."""
    for i, line in enumerate(lines):
        if line.endswith(": Skipped"):
            reason = []
            for follow in lines[i + 1:]:
                if follow.startswith("[  SKIPPED ]"):
                    break
                if follow.strip():
                    reason.append(follow.strip())
            return " ".join(reason)
    return ""


def reason_of(output):
    lines = output.splitlines()
    if any(line.startswith("[  SKIPPED ]") for line in lines):
        return gtest_reason(lines)
    nonblank = [line.strip() for line in lines if line.strip()]
    return nonblank[-1] if nonblank else ""


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    skipped = []
    for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
        skip = case.find("skipped")
        if skip is None or not skip.get("message", "").startswith("SKIP_"):
            continue  # run, failed, or disabled (ctest lists those itself)
        skipped.append((case.get("name"), reason_of(case.findtext("system-out") or "")))
    print("%d skipped test(s)%s" % (len(skipped), ", each with its reason:" if skipped else ""))
    missing = 0
    for name, reason in skipped:
        if not reason:
            missing += 1
            reason = "NO REASON GIVEN: say why, e.g. GTEST_SKIP() << \"needs root\""
        print("  %s: %s" % (name, reason))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
