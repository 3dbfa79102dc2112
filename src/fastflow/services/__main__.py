"""``python -m fastflow.services NAME CONFIG.json``: how ``fastflow run`` starts a child.

The file is the whole validated configuration (:func:`fastflow.config.to_data`),
written by the parent into its private run directory (mode 0600): the child's
configuration travels in it, never on its command line or in its environment.
The child checks it again (:func:`fastflow.config.from_data`) and calls the
service's ``main(config)``.
"""

from __future__ import annotations

import json
import sys

from fastflow.config import ConfigError, from_data

USAGE = "usage: python -m fastflow.services plant|gateway|simulator CONFIG.json"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    name, path = argv
    try:
        with open(path, encoding="utf-8") as handle:
            config = from_data(json.load(handle), source=path)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"fastflow {name}: cannot read its configuration: {exc}", file=sys.stderr)
        return 2
    if name == "plant":
        from fastflow.services import plant

        return plant.main(config)
    if name == "gateway":
        from fastflow.services import gateway

        return gateway.main(config)
    if name == "simulator":
        from fastflow.services import simulator

        return simulator.main(config)
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
