"""The stages after training: `swift infer` of a checkpoint over a test set (scored), and
`swift export --merge_lora true` of it, each on the checkpoint `ckpt=best|last|PATH` chooses
(swiftops.runfolder.choose_checkpoint), on the job's own run or an existing one (`run=PATH`).

A job folder after `stages=[sft,infer,export]`:

    JOB/run.json            stages.infer / stages.export: status, checkpoint, paths, score
    JOB/infer.log, JOB/export.log
    JOB/infer/result.jsonl  swift's result lines;  JOB/infer/score.json  the score, item by item
    JOB/export/merged/      the merged model (weights, config, tokenizer)
    SWEEP/baseline/         the base model's result and score, once per sweep (JOB/baseline alone)

Stages never raise for swift's failures or for a run they can't use: each outcome becomes the
stage's entry in run.json (`completed`, `failed` with the error, or `skipped` with the reason).

The package: entry (what every stage's entry shares), infer (with the base model's score, once
per sweep), export, run (run_stage: one stage into its entry) and existing (the record of run=PATH).
"""
