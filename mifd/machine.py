"""The processor this process runs on, as records and benchmarks name it."""
from __future__ import annotations

import platform
import re
from typing import Any

VECTOR_EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu() -> dict[str, Any]:
    """The processor as /proc/cpuinfo and torch describe it: model name, family/model/stepping
    (which tell e.g. Zen 3 from Zen 4 where the name says only "AMD EPYC"), the vector
    extensions that decide torch's kernels, torch's CPU capability and its BLAS libraries."""
    import torch

    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break  # the first processor describes them all
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    flags = fields.get("flags", "").split()
    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version (\S+)", config)
    onednn = re.search(r"MKL-DNN v(\S+)", config)
    return {
        "model_name": fields.get("model name", platform.processor() or platform.machine()),
        "family_model_stepping": "/".join(fields.get(k, "?") for k in ("cpu family", "model", "stepping")),
        "vector_extensions": [f for f in VECTOR_EXTENSIONS if f in flags],
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": f"MKL {mkl.group(1)}" if mkl else "unknown",
        "onednn": onednn.group(1) if onednn else "unknown",
    }


def cpu_name(described: dict[str, Any]) -> str:
    """A processor as `cpu()` describes it, in a few words: model name and family/model/stepping
    (e.g. "AMD EPYC 25/17/1", a Zen 4)."""
    return f"{described['model_name']} {described['family_model_stepping']}".strip()


def recorded_cpu(provenance: dict[str, Any], missing: str | None = None) -> str:
    """The processor a record's provenance names, as `cpu_name` writes it; for a record older
    than its "cpu" entry, `missing`, or (None) the bare architecture it does name."""
    if provenance.get("cpu"):
        return cpu_name(provenance["cpu"])
    return provenance.get("processor", "") if missing is None else missing
