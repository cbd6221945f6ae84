/**
 * train.py of a cluster run (cluster-run.ts): TRL's SFTTrainer with a PEFT LoraConfig, reading every
 * setting from the SETTINGS literal the app writes at its top. Kept small and plain: it tokenises the rows
 * the way the app does (engine/data/template.ts tokenizeInstructionData) so that the same tokens are
 * trained, and hands TRL pre-tokenized rows with a completion mask, which TRL's collator turns into
 * labels (-100 where the mask is 0).
 *
 * Names checked against TRL's SFTConfig (trl/trainer/sft_config.py: max_length, completion_only_loss,
 * packing) and transformers' TrainingArguments; `dtype` needs transformers 4.56 or later.
 */

export const TRAIN_PY_BODY = String.raw`
HERE = os.path.dirname(os.path.abspath(__file__))

# The app's schedules as transformers names them: its "constant" warms up too.
SCHEDULERS = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


def tokenize(row, tokenizer):
    """As the app: the whole text tokenized at once (plus <|endoftext|> when asked); with the loss on
    the response only, the leading tokens shared with the tokenized prompt are masked; then cut to
    max_length ("cut": the text alone was longer)."""
    ids = tokenizer(row["prompt"] + row["completion"], add_special_tokens=False)["input_ids"]
    cut = len(ids) > SETTINGS["max_length"]
    if SETTINGS["append_eos"]:
        ids.append(tokenizer.eos_token_id)
    masked = 0
    if SETTINGS["loss_on"] == "response":
        prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        while masked < min(len(prompt), len(ids)) and prompt[masked] == ids[masked]:
            masked += 1
    ids = ids[: SETTINGS["max_length"]]
    masked = min(masked, len(ids))
    return {"input_ids": ids, "completion_mask": [0] * masked + [1] * (len(ids) - masked), "cut": cut}


def main():
    s = SETTINGS
    tokenizer = AutoTokenizer.from_pretrained(s["base_model"], revision=s["base_revision"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = load_dataset("json", data_files=os.path.join(HERE, "train.jsonl"), split="train")
    data = rows.map(lambda row: tokenize(row, tokenizer), remove_columns=rows.column_names)
    # Left out as in the app: symbol-tuning prompts the maximum length would cut (their answer is last),
    # and rows without a label from position 1 on (position 0 predicts nothing).
    if s["drop_rows_cut_by_max_length"]:
        data = data.filter(lambda row: not row["cut"])
    data = data.filter(lambda row: len(row["input_ids"]) >= 2 and any(row["completion_mask"][1:])).remove_columns("cut")

    # The run's global batch (batch x accumulation sequences per optimizer step) on any number of
    # processes: the accumulation is divided among them when it can be.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    accumulation = s["gradient_accumulation"]
    if accumulation % world == 0:
        accumulation //= world
    else:
        print(f"{world} processes do not divide the accumulation of {accumulation}: each optimizer step sees {world}x the run's batch.")
    if s["steps"] is not None:
        steps = s["steps"]
    else:
        steps = max(1, math.ceil(s["epochs"] * len(data) / (s["batch_size"] * s["gradient_accumulation"])))
    print(f"{len(data)} examples of {len(rows)} rows; {steps} optimizer steps")

    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    model = AutoModelForCausalLM.from_pretrained(
        s["base_model"],
        revision=s["base_revision"],
        dtype=torch.bfloat16 if bf16 else torch.float32,
        resid_pdrop=s["resid_dropout"],
    )
    lora = LoraConfig(
        r=s["r"],
        lora_alpha=s["lora_alpha"],
        lora_dropout=s["lora_dropout"],
        use_rslora=s["use_rslora"],
        target_modules=s["target_modules"],
        layers_to_transform=s["layers_to_transform"],
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_config = lora
    init = os.path.join(HERE, "init_adapter")
    if os.path.isdir(init):
        # The run continues a stored adapter (the paper's symbol tuning): start from its weights.
        model = PeftModel.from_pretrained(model, init, is_trainable=True, config=lora)
        peft_config = None

    args = SFTConfig(
        output_dir=os.path.join(HERE, "checkpoints"),
        max_steps=steps,
        per_device_train_batch_size=s["batch_size"],
        gradient_accumulation_steps=accumulation,
        learning_rate=s["learning_rate"],
        lr_scheduler_type=SCHEDULERS[s["schedule"]],
        warmup_steps=min(s["warmup_steps"], steps),
        weight_decay=s["weight_decay"],
        max_grad_norm=s["max_grad_norm"],
        optim=s["optimizer"],
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        max_length=s["max_length"],
        completion_only_loss=True,
        packing=False,
        seed=s["seed"],
        data_seed=s["seed"],
        bf16=bf16,
        gradient_checkpointing=True,
        ddp_find_unused_parameters=False,
        logging_steps=1,
        save_steps=s["checkpoint_every"] or steps,
        report_to="none",
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=peft_config)
    trainer.train()
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(os.path.join(HERE, "adapter"))


if __name__ == "__main__":
    main()
`;

/** The script: a header naming the run, the imports, SETTINGS, then the body. */
export function trainPy(runName: string, settingsLiteral: string): string {
  return [
    '"""',
    `LoRA fine-tuning of the Phi-2 LoRA lab run "${runName.replace(/["\\]/g, '')}" with TRL and PEFT, on one GPU or many.`,
    '',
    'Launch it with accelerate (README.md has the command for each setup):',
    '    accelerate launch --config_file accelerate/single_gpu.yaml train.py',
    'The adapter lands in ./adapter as adapter_config.json + adapter_model.safetensors (PEFT), which the',
    "app's Adapters page imports as it is.",
    '"""',
    'import math',
    'import os',
    '',
    'import torch',
    'from datasets import load_dataset',
    'from peft import LoraConfig, PeftModel',
    'from transformers import AutoModelForCausalLM, AutoTokenizer',
    'from trl import SFTConfig, SFTTrainer',
    '',
    '# The run, as the app set it up. Change settings here; the code below only reads them.',
    `SETTINGS = ${settingsLiteral}`,
    TRAIN_PY_BODY,
  ].join('\n');
}
