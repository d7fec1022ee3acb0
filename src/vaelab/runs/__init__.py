"""Run folders and the files in them: everything vaelab writes and reads back.

- `atomic`: temp file and rename for every file vaelab reads back; `lock`: one run per
  folder (`flock` on `<run>/.lock`).
- `files`: metrics.json and eval.json (their schema and every reader); `naming`: a
  job's name from its overrides (sweep folders, tracking runs);
  `checkpoints`: checksummed atomic checkpoints, one-line errors, the newest intact one;
  `images`: PNG grids and GIFs.
- `trained`: a finished run as eval and generate open it (checkpoint, config, model,
  data).

`atomic`, `lock`, `files` and `naming` import nothing of vaelab but `vaelab.errors`
and the metrics' names, so the data and compare packages can use them; `checkpoints`
and `images` sit a layer above, and `trained` opens models and data.
"""
