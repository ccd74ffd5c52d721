import warnings

import pytest
import torch

from hybrid_rl.algos import precision
from hybrid_rl.algos.cql import CQL, CQLConfig
from hybrid_rl.algos.precision import cpu_flags, matmul_dtype, missing_bf16

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def fresh_warning():
    precision._warn_once.cache_clear()


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni", True),  # Zen 4, Cooper Lake
        ("fpu sse2 avx512f amx_tile amx_bf16 amx_int8", True),  # Sapphire Rapids
        ("fpu sse2 avx2 avx512f avx512bw avx512_vnni", False),  # Skylake/Cascade Lake Xeon
        ("fpu sse2 avx2 fma", False),
        ("", False),  # no /proc/cpuinfo flags line (macOS, Windows, ARM Linux)
        ("avx512_bf16x amx_bf16_off", False),  # whole flags only
    ],
)
def test_bf16_is_used_only_where_the_cpu_flags_name_native_bf16(flags, native):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dtype = matmul_dtype("bf16", CPU, flags)
        assert matmul_dtype("fp32", CPU, flags) == torch.float32
    assert dtype == (torch.bfloat16 if native else torch.float32)
    messages = [str(w.message) for w in caught]
    if native:
        assert messages == []
    else:
        assert messages == [
            "precision bf16 asked for, but this CPU lacks avx512_bf16 and amx_bf16: using fp32"
        ]


def test_the_fallback_warning_is_one_line_per_process():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert matmul_dtype("bf16", CPU, "fpu avx2") == torch.float32
    assert len(caught) == 1


def test_this_machine_reads_its_own_cpu_flags():
    flags = set(cpu_flags().split())
    if not flags:
        pytest.skip("no flags line in /proc/cpuinfo on this machine")
    native = bool(flags & {"avx512_bf16", "amx_bf16"})
    assert (missing_bf16(CPU) is None) == native
    expected = torch.bfloat16 if native else torch.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert CQL(3, 2, CQLConfig(precision="bf16")).matmul_dtype == expected
    assert CQL(3, 2, CQLConfig()).matmul_dtype == torch.float32


def test_other_devices_fall_back_to_fp32():
    assert missing_bf16(torch.device("meta")) == "bf16 on meta devices is not supported here"


def test_an_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        CQLConfig(precision="fp16")  # type: ignore[arg-type]
