"""The shipped DeepSpeed files, validated by DeepSpeed's own config classes after the HF
Trainer has filled the "auto" fields (as it does at launch)."""

import copy
import json

import pytest

FILES = ["zero2.json", "zero2_offload.json"]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("bf16", [False, True])
def test_deepspeed_accepts_config(repo_root, name, bf16):
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    raw = json.loads((repo_root / "ds_configs" / name).read_text())
    assert raw["train_micro_batch_size_per_gpu"] == "auto" and raw["bf16"]["enabled"] == "auto"
    hf = HfTrainerDeepSpeedConfig(copy.deepcopy(raw))
    args = TrainingArguments(
        output_dir="/tmp/ds-check", per_device_train_batch_size=4, gradient_accumulation_steps=8,
        bf16=bf16, use_cpu=True, report_to="none",
    )
    hf.trainer_config_process(args)
    assert hf.config["bf16"]["enabled"] is bf16
    ds = DeepSpeedConfig(hf.config)  # raises on unknown keys / inconsistent batch sizes
    assert ds.zero_optimization_stage == 2
    assert ds.train_micro_batch_size_per_gpu == 4 and ds.gradient_accumulation_steps == 8
    assert (ds.zero_config.offload_optimizer is not None) == ("offload" in name)
    assert ds.zero_config.offload_optimizer is None or ds.zero_config.offload_optimizer.device == "cpu"


def test_validation_is_real(repo_root):
    """The same classes reject a misspelt ZeRO key: the test above would catch one."""
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    raw = json.loads((repo_root / "ds_configs" / "zero2.json").read_text())
    zero = dict(raw["zero_optimization"], overlap_comms=True)
    with pytest.raises(Exception, match="overlap_comms"):
        DeepSpeedZeroConfig(**zero)
