"""``python -m start.export RUN_DIR --round N --out DIR [--push-to-hub REPO]``: a finished run's results as
folders other people load.

``DIR`` receives:

* ``model/``: the round's policy as a full model folder (the training stage already merged LoRA): weights,
  tokenizer, a generation config holding the run's sampling settings, and a model card (``README.md``) with the
  run's measured table (``report/rounds.json``) and how the model was made (``config.json``, the stages'
  manifests). Round 0 is the warm-up model; a round that trained nothing exports the policy it passed on.
* ``pairs/``: the round's preference pairs (``round_N/pairs/pairs.jsonl``) as a ``datasets`` folder
  (``Dataset.save_to_disk``; ``load_from_disk`` reads it back) with a data card;
* ``warmup/``: the warm-up data (``round_0/warmup/data/warmup.jsonl``), the same way;
* ``export.json``: what was exported from where.

Every exported stage must be finished, and is checked against its manifest first (start.stage.check_stage).
The export is written to a temporary folder beside ``DIR`` and renamed at the end: an interrupted export leaves
nothing. ``--push-to-hub USER/NAME`` then uploads the model to ``USER/NAME`` and the data sets to
``USER/NAME-pairs`` and ``USER/NAME-warmup`` with ``huggingface_hub``; the hub and the token are checked before
anything is written, so without a network (or with ``HF_HUB_OFFLINE=1``, or without a token) the command stops
with one line and exit status 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from start.io import atomic_dir, atomic_open, project_relative, read_jsonl, write_json
from start.stage import HASH_FILE, MANIFEST, MARKER, check_stage

log = logging.getLogger("start.export")
CARD_METRICS = ("citation_rec", "citation_prec", "citation_f1", "attribution_margin", "str_em", "comprehensiveness",
                "length")
PROMPT_CHARS = 1500  # the example prompt in the model card is cut after this many characters


class ExportError(RuntimeError):
    """Why a run cannot be exported (or uploaded); ``str()`` is one line."""


# ------------------------------------------------------------------------------------------- what to export


def _finished(run_dir: Path, stage: str) -> Path:
    """A finished stage folder, checked against its manifest."""
    folder = run_dir / stage
    if not (folder / MARKER).is_file():
        raise ExportError(f"{folder} is not finished (no {MARKER} marker); finish the run first "
                          f"(python -m start.run run_dir={run_dir})")
    check = check_stage(folder, run_dir)
    if check.status == "changed":
        raise ExportError(f"{stage} changed since it finished ({', '.join(check.changed)}); "
                          f"python -m start.run stage=verify run_dir={run_dir}, then run it again")
    return folder


def sources(run_dir: Path, rnd: int) -> dict[str, Any]:
    """The finished folders an export of round ``rnd`` reads: its model, its pairs (rounds >= 1), the warm-up
    data (when the run had a warm-up), and why the model is not the round's own (a round that trained nothing)."""
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run folder")
    if not (run_dir / "config.json").is_file():
        raise ExportError(f"{run_dir} holds no config.json: not a run folder of python -m start.run")
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    rounds = int(config.get("rounds", 0))
    if not 0 <= rnd <= rounds:
        raise ExportError(f"--round {rnd}: the run has rounds 0..{rounds}")
    warm = run_dir / "round_0" / "warmup"
    out: dict[str, Any] = {"config": config, "passthrough": None, "pairs": None, "warmup": None, "model_stage": None}
    if (warm / MARKER).is_file():
        out["warmup"] = _finished(run_dir, "round_0/warmup") / "data" / "warmup.jsonl"
    if rnd == 0:
        if not warm.is_dir():
            raise ExportError(f"round 0 has no trained model: the run had no warm-up (warmup.enabled=false), so "
                              f"policy 0 is the base model {config.get('model', {}).get('name')!r}")
        out["model_stage"] = _finished(run_dir, "round_0/warmup")
        out["model"] = out["model_stage"] / "model"
        return out
    train = _finished(run_dir, f"round_{rnd}/train")
    out["model_stage"] = train
    out["pairs"] = _finished(run_dir, f"round_{rnd}/pairs") / "pairs.jsonl"
    passed = train / "passthrough.json"
    if passed.is_file():  # the round trained nothing: its policy is the one it was given
        out["passthrough"] = json.loads(passed.read_text())
        out["model"] = Path(out["passthrough"]["policy"])
    else:
        out["model"] = train / "model"
    if not (out["model"] / "config.json").is_file():
        raise ExportError(f"{out['model']}: no model folder (config.json missing)")
    return out


# ------------------------------------------------------------------------------------------- cards


def _table(run_dir: Path, rnd: int) -> str:
    from start.evaluate import markdown_table

    rounds = json.loads(p.read_text()) if (p := run_dir / "report" / "rounds.json").is_file() else []
    rows = [(f"**{r['round']}** (this model)" if str(r["round"]) == str(rnd) else str(r["round"]), r)
            for r in rounds]
    baseline = run_dir / "round_0" / "baselines" / "metrics.json"
    if baseline.is_file():
        b = json.loads(baseline.read_text())
        rows.append((f"best constant baseline ({b['best']})", b["baselines"][b["best"]]))
    return markdown_table(rows, CARD_METRICS) if rows else "(the run has no evaluation yet)"


def _shown(value: Any) -> str:
    """A setting as a published card shows it: a local path by its last part (no machine's folders)."""
    text = str(value)
    return Path(text).name if text.startswith(("/", "./", "../", "~")) or text.count("/") > 1 else text


def published_config(obj: Any) -> Any:
    """The run's configuration with every absolute path made project-relative (or cut to its last part)."""
    if isinstance(obj, dict):
        return {k: published_config(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [published_config(v) for v in obj]
    return project_relative(obj) if isinstance(obj, str) and obj.startswith("/") else obj


def _manifest(folder: Path | None) -> dict:
    return json.loads((folder / MANIFEST).read_text()) if folder and (folder / MANIFEST).is_file() else {}


def _example_prompt(run_dir: Path, rnd: int) -> str | None:
    path = run_dir / f"round_{rnd}" / "eval" / "sample" / "samples.jsonl"
    rows = read_jsonl(path) if path.is_file() else []
    if not rows:
        return None
    text = rows[0]["prompt"]
    return text if len(text) <= PROMPT_CHARS else text[:PROMPT_CHARS] + " [...]"


def model_card(run_dir: Path, rnd: int, src: dict, repos: dict[str, str] | None) -> str:
    from start.models import BUILTIN_MODELS

    cfg = src["config"]
    model = cfg.get("model", {})
    trainer, sft, sampler = cfg.get("trainer", {}), cfg.get("sft", {}), cfg.get("sampler", {})
    judge = (cfg.get("scorer", {}).get("nli") or {}).get("model", "default")
    training = json.loads(p.read_text()) if (p := run_dir / "report" / "training.json").is_file() else []
    libs = _manifest(src["model_stage"]).get("libraries", {})
    base, source = _shown(model.get("name")), cfg.get("data", {}).get("source")
    front = ["---", "library_name: transformers", "pipeline_tag: text-generation",
             "tags: [start, self-taught-attribution, dpo, citations, attribution]"]
    if base.count("/") == 1 and not base.startswith((".", "/")):
        front.append(f"base_model: {base}")
    if repos:
        front.append("datasets: [" + ", ".join(r for k, r in repos.items() if k != "model") + "]")
    front.append("---")
    lines = [*front, "", f"# {cfg.get('experiment_name', 'START')}: the policy after round {rnd}", "",
             "A causal language model taught by START (Self-Taught AttRibuTion) to answer a question from the "
             "documents it is given, citing them as `[1]`, `[2]`, ... before each sentence's final period. It "
             "improved by itself: it wrote its own attributed training data (warm-up), then in each round "
             "sampled answers, had an NLI judge score how well their citations support them, and learned from "
             "preference pairs of its own answers (DPO).", ""]
    if src["passthrough"]:
        lines += [f"Round {rnd} trained nothing ({src['passthrough'].get('why')}): this is the policy it was "
                  "given.", ""]
    lines += ["## Results on held-out questions", "",
              "Means over held-out questions with 95% bootstrap intervals (questions resampled), from the run's "
              "report (`report/rounds.json`); citation metrics are judged by the run's NLI judge. `base` is the "
              "base model, `0` the warm-up model, `1`.. the rounds.", "", _table(run_dir, rnd), "",
              "## How it was made", "",
              f"- base model: `{base}`" + (f" (START's built-in copy of `{BUILTIN_MODELS[base].filename}`)"
                                           if base in BUILTIN_MODELS else ""),
              ("- warm-up: supervised fine-tuning on the model's own attributed answers (learning rate "
               f"{sft.get('learning_rate')}, {sft.get('epochs')} epochs, LoRA {sft.get('use_lora')})"
               if cfg.get("warmup", {}).get("enabled", True) else "- warm-up: off (round 0 is the base model)"),
              f"- rounds: {rnd} of {cfg.get('rounds')}, each on {cfg.get('train_questions') or 'all'} training "
              f"questions, {sampler.get('n')} samples per question (temperature {sampler.get('temperature')}, "
              f"top_p {sampler.get('top_p')}, at most {sampler.get('max_new_tokens')} new tokens)",
              f"- reward: the NLI judge `{_shown(judge)}` (citation recall and precision, "
              "comprehensiveness); preference pairs by `start.preferences`",
              f"- DPO: beta {trainer.get('beta')}, learning rate {trainer.get('learning_rate')}, LoRA "
              f"r={trainer.get('lora', {}).get('r')} (merged into these weights), reference model: the previous "
              "round's policy",
              f"- questions: training `{_shown(cfg.get('train_source') or source)}` (split "
              f"`{cfg.get('train_split')}`), held-out `{_shown(cfg.get('eval_source') or source)}` (split "
              f"`{cfg.get('eval_split')}`); seed {cfg.get('seed')}"]
    if libs:
        lines.append("- libraries: " + ", ".join(f"{k} {v}" for k, v in libs.items()))
    if training:
        lines += ["", "| round | training questions | preference pairs |", "|---|---:|---:|"]
        lines += [f"| {t['round']} | {t.get('questions', '-')} | {t.get('pairs', '-')} |" for t in training
                  if int(t["round"]) <= rnd]
    lines += ["", "The whole configuration is in `start_config.json` beside the weights.", "", "## Use", "",
              "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              f"path = \"{repos['model'] if repos else 'model'}\"",
              "tokenizer = AutoTokenizer.from_pretrained(path)",
              "model = AutoModelForCausalLM.from_pretrained(path)",
              "prompt = tokenizer.apply_chat_template([{\"role\": \"user\", \"content\": question_with_documents}],",
              "                                       tokenize=False, add_generation_prompt=True)",
              "ids = tokenizer(prompt, return_tensors=\"pt\", add_special_tokens=False)",
              "answer = tokenizer.decode(model.generate(**ids)[0, ids[\"input_ids\"].shape[1]:],"
              " skip_special_tokens=True)",
              "```", "", "`generate` samples with the run's settings (`generation_config.json`)."]
    prompt = _example_prompt(run_dir, rnd)
    if prompt:
        fence = "````" if "```" in prompt else "```"
        lines += ["", "The prompt it was trained and evaluated with (a held-out question, as rendered):", "",
                  fence + "text", prompt, fence]
    lines += ["", "## Limitations", "",
              "The numbers come from an automatic NLI judge on the run's held-out questions, with the intervals "
              "shown; a small model learns from its own answers only, and a judge's mistakes can be learned too "
              "(compare the evaluation judge's metrics in the run's report). Answers are as reliable as the "
              "documents given.", ""]
    return "\n".join(lines)


def pairs_card(run_dir: Path, rnd: int, src: dict, columns: dict[str, str], n: int) -> str:
    stats = json.loads(p.read_text()) if (p := src["pairs"].parent / "stats.json").is_file() else {}
    pref = src["config"].get("preference", {})
    lines = ["---", "tags: [start, dpo, preference, citations]", "task_categories: [text-generation]", "---", "",
             f"# {src['config'].get('experiment_name', 'START')}: preference pairs of round {rnd}", "",
             f"{n} preference pairs the policy of round {rnd - 1} made from its own answers: for each training "
             "question it sampled several cited answers, an NLI judge scored their citation recall and precision "
             "and their comprehensiveness, and `start.preferences` paired a better answer (`chosen`) with a worse "
             "one (`rejected`) under the same `prompt` (the chat template already applied). They are the DPO "
             f"training data of round {rnd}.", "", "## Columns", "",
             *(f"- `{k}`: {v}" for k, v in columns.items()), "", "## How they were chosen", "",
             f"- settings (`preference`): `{json.dumps(pref, sort_keys=True)}`"]
    if stats:
        lines += [f"- {stats.get('pairs')} pairs from {stats.get('questions')} questions "
                  f"({stats.get('questions_with_pairs')} with a pair); by kind {stats.get('by_kind')}, by signal "
                  f"{stats.get('by_signal')}; questions without a pair: {stats.get('questions_dropped') or 'none'}"]
    lines += ["", "## Load", "", "```python", "from datasets import load_from_disk", "",
              "pairs = load_from_disk(\"pairs\")", "```", ""]
    return "\n".join(lines)


def warmup_card(src: dict, columns: dict[str, str], n: int) -> str:
    stats = json.loads(p.read_text()) if (p := src["warmup"].parent.parent / "stats.json").is_file() else {}
    lines = ["---", "tags: [start, sft, citations, synthetic]", "task_categories: [text-generation]", "---", "",
             f"# {src['config'].get('experiment_name', 'START')}: warm-up data", "",
             f"{n} attributed answers the base model wrote itself, the supervised fine-tuning data of round 0: for "
             "each training question it answered, listed the answer's facts, wrote short documents holding them "
             "(plus distractor documents of other questions), and an NLI judge cited each sentence with the "
             "documents that entail it; only examples the scorer rates fully supported are kept. The recipe, "
             "step by step: `data_cards/warmup_data.md` in the START repository.", "", "## Columns", "",
             *(f"- `{k}`: {v}" for k, v in columns.items()), ""]
    if stats:
        lines += [f"Questions: {stats.get('questions')}; examples kept: {stats.get('examples')}; dropped by step: "
                  f"{stats.get('dropped_by_step') or 'none'}.", ""]
    lines += ["## Load", "", "```python", "from datasets import load_from_disk", "",
              "warmup = load_from_disk(\"warmup\")", "```", ""]
    return "\n".join(lines)


PAIR_COLUMNS = {"id": "the question's id", "prompt": "the prompt, rendered with the chat template",
                "chosen": "the preferred answer", "rejected": "the other answer",
                "signal": "what decided the pair (attributability, comprehensiveness, ...)",
                "kind": "overall (whole answers) or fine_grained", "margin": "the reward difference",
                "chosen_scores": "the chosen answer's scores", "rejected_scores": "the rejected answer's scores"}
WARMUP_COLUMNS = {"id": "the question's id", "prompt": "the sampling prompt over the generated documents",
                  "completion": "the cited answer (the training target)", "question": "the question",
                  "docs": "the documents (title, text, distractor)", "answer": "the cited answer",
                  "distractor_positions": "positions of the distractor documents",
                  "uncited_answer": "the answer before citations were added", "claims": "the answer's facts",
                  "dropped_sentences": "answer sentences no document supported",
                  "n_truncated_docs": "documents shortened to fit the context"}


# ------------------------------------------------------------------------------------------- writing


def _dataset(rows: list[dict], folder: Path, descriptions: dict[str, str]) -> dict[str, str]:
    """``rows`` saved as a ``datasets`` folder; the column descriptions of the card (unknown columns: their type)."""
    from datasets import Dataset

    data = Dataset.from_list(rows)
    data.save_to_disk(str(folder))
    return {c: descriptions.get(c, str(data.features[c])) for c in data.column_names}


def _copy_model(src: Path, dst: Path, sampler: dict) -> None:
    """The model folder without the project's bookkeeping (content hash, training info with local paths),
    with a generation config holding the run's sampling settings."""
    from transformers import GenerationConfig

    dst.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name != HASH_FILE and not (f.name.startswith("start_") and f.suffix == ".json"):
            shutil.copy2(f, dst / f.name)
    try:
        gen = GenerationConfig.from_pretrained(dst)
    except OSError:  # a model saved without one: start from its config
        from transformers import AutoConfig

        gen = GenerationConfig.from_model_config(AutoConfig.from_pretrained(dst))
    temperature = float(sampler.get("temperature", 0.7))
    gen.update(do_sample=temperature > 0, max_new_tokens=int(sampler.get("max_new_tokens", 200)),
               **({"temperature": temperature, "top_p": float(sampler.get("top_p", 1.0))} if temperature > 0 else {}))
    gen.save_pretrained(dst)


def export(run_dir: str | Path, rnd: int, out: str | Path, *, overwrite: bool = False,
           repos: dict[str, str] | None = None, src: dict | None = None) -> Path:
    """Write the export of round ``rnd`` of ``run_dir`` to ``out`` (see the module docstring); ``repos`` (the
    hub repositories the card names) only changes the cards; ``src``: :func:`sources`, when already read.
    :class:`ExportError` on anything that stops it."""
    run_dir, out = Path(run_dir), Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; choose another --out or pass --overwrite")
    src = src or sources(run_dir, rnd)
    log.info("exporting round %d of %s to %s", rnd, run_dir, out)
    with atomic_dir(out) as tmp:
        _copy_model(src["model"], tmp / "model", src["config"].get("sampler", {}))
        write_json(tmp / "model" / "start_config.json", published_config(src["config"]))
        with atomic_open(tmp / "model" / "README.md") as f:
            f.write(model_card(run_dir, rnd, src, repos))
        made = {"model": "model"}
        if src["pairs"] is not None:
            rows = read_jsonl(src["pairs"])
            columns = _dataset(rows, tmp / "pairs", PAIR_COLUMNS)
            with atomic_open(tmp / "pairs" / "README.md") as f:
                f.write(pairs_card(run_dir, rnd, src, columns, len(rows)))
            made["pairs"] = "pairs"
        if src["warmup"] is not None and src["warmup"].is_file():
            rows = read_jsonl(src["warmup"])
            columns = _dataset(rows, tmp / "warmup", WARMUP_COLUMNS)
            with atomic_open(tmp / "warmup" / "README.md") as f:
                f.write(warmup_card(src, columns, len(rows)))
            made["warmup"] = "warmup"
        write_json(tmp / "export.json", {
            "run": run_dir.name, "round": rnd, "folders": made,
            "from": {k: str(Path(src[k]).relative_to(run_dir)) if _inside(src[k], run_dir) else Path(src[k]).name
                     for k in ("model", "pairs", "warmup") if src[k] is not None},
            "fingerprints": {"model_stage": _manifest(src["model_stage"]).get("fingerprint")}})
        _shareable(tmp)
    return out


def _shareable(folder: Path) -> None:
    """Permissions as the user's umask gives new files (temporary files and folders are private to their
    owner): an export is meant to be read by others."""
    mask = os.umask(0)
    os.umask(mask)
    for root, _, files in os.walk(folder):
        os.chmod(root, 0o777 & ~mask)
        for name in files:
            os.chmod(Path(root) / name, 0o666 & ~mask)


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------- the hub


def hub_repos(repo: str, with_pairs: bool, with_warmup: bool) -> dict[str, str]:
    out = {"model": repo}
    if with_pairs:
        out["pairs"] = f"{repo}-pairs"
    if with_warmup:
        out["warmup"] = f"{repo}-warmup"
    return out


def check_hub(repo: str, *, timeout: float = 10.0):
    """Everything an upload needs, checked before anything is written: a repository name, hub access allowed,
    a token, and the hub answering to it. Returns the :class:`huggingface_hub.HfApi`."""
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ExportError(f"--push-to-hub: {repo!r} is not a repository name (USER/NAME or ORG/NAME)")
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        raise ExportError("--push-to-hub: HF_HUB_OFFLINE is set (the Makefile sets it): the hub may not be reached; "
                          "run with HF_HUB_OFFLINE=0 to upload; nothing was written")
    from huggingface_hub import HfApi, get_token

    token = get_token()
    if not token:
        raise ExportError("--push-to-hub: no Hugging Face token (hf auth login, or set HF_TOKEN); nothing was written")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(timeout)))
    api = HfApi(token=token)
    try:
        api.whoami()
    except Exception as e:  # the hub's client raises many kinds (no network, DNS, refused, 401): all stop here
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ExportError(f"--push-to-hub: the Hugging Face Hub cannot be reached or refuses the token "
                          f"({type(e).__name__}: {first[:200]}); nothing was written") from None
    return api


def push(api, out: Path, repos: dict[str, str], private: bool) -> None:
    for key, repo in repos.items():
        kind = "model" if key == "model" else "dataset"
        api.create_repo(repo, repo_type=kind, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(out / key), repo_id=repo, repo_type=kind,
                          commit_message=f"START export: {key} of {out.name}")
        log.info("uploaded %s to %s (%s)", out / key, repo, kind)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m start.export", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="a run folder of python -m start.run (runs/<experiment>)")
    p.add_argument("--round", type=int, required=True, dest="rnd", help="the round whose policy and pairs to export "
                   "(0: the warm-up model)")
    p.add_argument("--out", type=Path, required=True, help="the export folder (created; see --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--push-to-hub", metavar="USER/NAME", help="also upload: the model to USER/NAME, the data sets "
                   "to USER/NAME-pairs and USER/NAME-warmup (needs the network and a token)")
    p.add_argument("--private", action="store_true", help="with --push-to-hub: private repositories")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("httpx", "huggingface_hub", "datasets"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        if args.out.exists() and not args.overwrite:
            raise ExportError(f"{args.out} exists; choose another --out or pass --overwrite")
        src = sources(args.run_dir, args.rnd)
        api, repos = None, None
        if args.push_to_hub:
            repos = hub_repos(args.push_to_hub, src["pairs"] is not None, src["warmup"] is not None)
            api = check_hub(args.push_to_hub)
        out = export(args.run_dir, args.rnd, args.out, overwrite=args.overwrite, repos=repos, src=src)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported round {args.rnd} of {args.run_dir} to {out}: " + ", ".join(
        f"{p.name}/" for p in sorted(out.iterdir()) if p.is_dir()))
    if api is not None:
        try:
            push(api, out, repos, args.private)
        except Exception as e:  # network or permission failure mid-upload: one line; the local export stays
            print(f"error: upload failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); the "
                  f"export in {out} is complete: run the same command with --overwrite to try again", file=sys.stderr)
            return 1
        print("uploaded: " + ", ".join(f"https://huggingface.co/{'' if k == 'model' else 'datasets/'}{r}"
                                       for k, r in repos.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
