"""The NetworkPolicies as rendered must allow exactly what their sources say: kustomize may
add labels to the selected pods, never change a rule's peers or ports.

Usage: check_policies.py RENDERED.yaml... -- SOURCE.yaml...
"""

import sys

import yaml


def policies(paths, problems):
    found = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc and doc.get("kind") == "NetworkPolicy":
                    name = doc["metadata"]["name"]
                    if name in found:
                        problems.append(f"{name}: twice")
                    found[name] = doc["spec"]
    return found


def main(argv):
    split = argv.index("--")
    problems = []
    rendered = policies(argv[:split], problems)
    sources = policies(argv[split + 1 :], problems)
    # NetworkPolicies add up: one rendered with no source would widen what is allowed.
    for name in rendered.keys() - sources.keys():
        problems.append(f"{name}: rendered, but in no source")
    for name, source in sources.items():
        out = rendered.get(name)
        if out is None:
            problems.append(f"{name}: not rendered")
            continue
        for key in ("policyTypes", "ingress", "egress"):
            if out.get(key) != source.get(key):
                problems.append(f"{name}: {key} rendered as {out.get(key)!r}, written as {source.get(key)!r}")
        want = source["podSelector"].get("matchLabels", {})
        have = out["podSelector"].get("matchLabels", {})
        if have != want:
            problems.append(f"{name}: selects {have!r}, written as {want!r}")
    if not sources:
        problems.append("no NetworkPolicy in the sources")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
