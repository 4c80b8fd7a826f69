#!/usr/bin/env python3
"""Write manifests/prometheusrule.yaml from alerts/tend.rules.yaml.

The plain rule file is the source, because promtool checks and tests it
directly. With --check, compare instead of writing and exit 1 when the
manifest differs from what this script would write.
"""
import argparse
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE = ROOT / "alerts" / "tend.rules.yaml"
TARGET = ROOT / "manifests" / "prometheusrule.yaml"

HEADER = """\
# Generated from alerts/tend.rules.yaml by
# testbed/artifacts/gen_prometheusrule.py: edit the rule file and run the
# script again. The parameters to adjust are described at the top of the
# rule file. The Prometheus Operator loads this object only if its
# Prometheus resource's ruleSelector matches these labels.
"""


class BlockDumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings (PromQL) as literal blocks
    and indents list items under their key, as the rule file does."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def represent_str(dumper, text):
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


BlockDumper.add_representer(str, represent_str)


def render() -> str:
    rules = yaml.safe_load(SOURCE.read_text())
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "tend",
            "labels": {
                "app.kubernetes.io/name": "tend",
                "app.kubernetes.io/component": "alerts",
            },
        },
        "spec": {"groups": rules["groups"]},
    }
    body = yaml.dump(manifest, Dumper=BlockDumper, sort_keys=False, width=100)
    return HEADER + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    text = render()
    if args.check:
        if TARGET.read_text() != text:
            print(f"{TARGET.relative_to(ROOT)} differs from {SOURCE.relative_to(ROOT)}; "
                  "run testbed/artifacts/gen_prometheusrule.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
