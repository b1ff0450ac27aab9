"""designspace export, recipes, build_model round trips and the timm registration."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import designspace as ds
from designspace import zoo
from designspace.cli import main
from designspace.evaluate.measure.onnx import run_onnx
from designspace.exceptions import DesignspaceError, DocumentError
from designspace.recipes import family_of, load_recipe, recipe_for, recipe_names
from designspace.timm_compat import register_timm


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 4-trial search of spaces/tiny.yaml, latency measured."""
    root = tmp_path_factory.mktemp("results")
    mp = pytest.MonkeyPatch()
    mp.setenv("DESIGNSPACE_RESULTS", str(root))
    assert main(["search", "tiny", "--trials", "4", "--seed", "3", "--no-progress"]) == 0
    mp.undo()
    return root


@pytest.fixture()
def results(study: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DESIGNSPACE_RESULTS", str(study))
    return study


def _best(results: Path) -> int:
    return int(json.loads((results / "tiny" / "summary.json").read_text())["best"][0]["number"])


def test_export_round_trip(results: Path, tmp_path: Path) -> None:
    number = _best(results)
    out = tmp_path / "exp"
    assert main(["export", f"tiny:{number}", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "arch.yaml", "metrics.json", "model.onnx",
                                                    "recipe.yaml"]
    metrics = json.loads((out / "metrics.json").read_text())
    rows = ds.results.read_results("tiny").rows
    row = next(r for r in rows if r["number"] == str(number))
    # rebuilt and re-counted: the study's record
    assert metrics["counts"]["params_m"] == pytest.approx(float(row["params_m"]), abs=0)
    assert metrics["counts"]["macs_g"] == pytest.approx(float(row["macs_g"]), abs=0)
    assert metrics["recorded"]["latency_ms"] == pytest.approx(float(row["latency_ms"]))
    assert metrics["latency_now"]["latency_ms"] > 0
    assert metrics["recorded"]["context"]["runtime"] == "onnxruntime"
    # build_model: the same network; the same weights give identical outputs
    original = ds.build_model(results / "tiny" / row["arch"]).eval()
    rebuilt = ds.build_model(out / "arch.yaml").eval()
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in original.parameters())
    assert sum(p.numel() for p in rebuilt.parameters()) == metrics["counts"]["params"]
    rebuilt.load_state_dict(original.state_dict())
    x = torch.randn(2, 3, rebuilt.arch.resolution, rebuilt.arch.resolution)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), original(x))
    # the ONNX file holds build_model's weights under torch.manual_seed(0), and matches PyTorch
    torch.manual_seed(0)
    seeded = ds.build_model(out / "arch.yaml").eval()
    x1 = x[:1]
    with torch.no_grad():
        want = seeded(x1)
    got = run_onnx(out / "model.onnx", x1)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert metrics["onnx"]["max_abs_diff"] < 1e-4
    # the recipe and README
    recipe = load_recipe(out / "recipe.yaml")
    assert recipe.name == family_of(rebuilt.arch) and recipe.resolution == rebuilt.arch.resolution
    assert "designspace.build_model(\"arch.yaml\")" in (out / "README.md").read_text()


def test_export_default_is_best_trial_and_refuses_to_overwrite(results: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exp"
    assert main(["export", "tiny", "--out", str(out), "--no-latency"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recorded"]["number"] == str(_best(results))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["export", "tiny:0", "--out", str(out), "--no-latency"]) == 2
    assert "already there" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing lost
    assert main(["export", "tiny:0", "--out", str(out), "--no-latency", "--force"]) == 0


def test_export_detects_counts_that_changed(results: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "res"
    import shutil

    shutil.copytree(results / "tiny", bad / "tiny")
    csv_path = bad / "tiny" / "trials.csv"
    lines = csv_path.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    cells = lines[1].rstrip("\n").split(",")
    cells[header.index("params_m")] = "0.123456"
    csv_path.write_text(lines[0] + ",".join(cells) + "\n" + "".join(lines[2:]))
    assert main(["export", str(bad / "tiny") + ":0", "--out", str(tmp_path / "x"), "--no-latency"]) == 2
    err = capsys.readouterr().err
    assert "params_m" in err and "0.123456" in err and "rerun the search" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("source, message", [
    ("tiny:999", "no trial 999"),
    ("tiny:first", "must be a number"),
    ("nosuchstudy", "not an Arch file, a zoo name or a study"),
])
def test_export_bad_sources(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str,
                            message: str) -> None:
    assert main(["export", source, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_export_refuses_paths_outside_the_study(results: Path, tmp_path: Path) -> None:
    import shutil

    from designspace.export import ExportError, export

    bad = tmp_path / "res" / "tiny"
    shutil.copytree(results / "tiny", bad)
    text = (bad / "trials.csv").read_text()
    (bad / "trials.csv").write_text(text.replace("archs/", "../../", 1))
    row0 = text.splitlines()[1]
    number = row0.split(",")[0]
    with pytest.raises(ExportError, match="outside the study folder"):
        export(f"{bad}:{number}", tmp_path / "x", latency=False)


def test_export_zoo_model_and_trained_weights(tmp_path: Path) -> None:
    from designspace.export import ExportError, export

    report = export("emo_1m", tmp_path / "emo", latency=False, onnx=False)
    assert report.metrics["recorded"] is None and report.metrics["family"] == "emo"
    assert not (tmp_path / "emo" / "model.onnx").exists()
    arch = zoo.load("emo_1m")
    small = ds.Arch.from_yaml(arch.to_yaml().replace("num_classes: 1000", "num_classes: 5"))
    (tmp_path / "small.yaml").write_text(small.to_yaml())
    torch.manual_seed(7)
    trained = ds.build_model(small)
    torch.save({"model": trained.state_dict()}, tmp_path / "best.pt")
    export(tmp_path / "small.yaml", tmp_path / "w", latency=False, weights=tmp_path / "best.pt")
    x = torch.randn(1, 3, small.resolution, small.resolution)
    with torch.no_grad():
        want = trained.eval()(x)
    assert torch.allclose(run_onnx(tmp_path / "w" / "model.onnx", x), want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ExportError, match="do not fit this Arch"):
        export("emo_1m", tmp_path / "v", latency=False, weights=tmp_path / "best.pt")


@pytest.mark.parametrize("name, family", [("emo_1m", "emo"), ("mobilenetv2_100", "emo"), ("iformer_t", "iformer"),
                                          ("smt_t", "smt"), ("efficientmod_xxs", "efficientmod"),
                                          ("efficientmod_s_conv", "efficientmod")])
def test_recipe_family_of_zoo_models(name: str, family: str) -> None:
    arch = zoo.load(name)
    assert family_of(arch) == family
    recipe = recipe_for(arch)
    assert recipe.name == family and recipe.drop_path == (arch.drop_path_rate or load_recipe(family).drop_path)
    assert recipe.epochs == 300 and recipe.weight_decay == 0.05 and recipe.label_smoothing == 0.1


def test_shipped_recipes_follow_the_papers() -> None:
    assert recipe_names() == ["efficientmod", "emo", "iformer", "smt"]
    emo = load_recipe("emo")  # EMO Sec. 3.1: AdamW, lr 6e-3, batch 2048, 20 warm-up epochs
    assert (emo.lr, emo.batch_size, emo.warmup_epochs, emo.betas) == (6e-3, 2048, 20, (0.9, 0.999))
    smt = load_recipe("smt")  # SMT Sec. 4.1: batch 1024, lr 1e-3, weight decay 0.05
    assert (smt.lr, smt.batch_size) == (1e-3, 1024)
    assert load_recipe("efficientmod").scaled_lr(512) == pytest.approx(5e-4)  # DeiT: 5e-4 at 512


@pytest.mark.parametrize("text, message", [
    ("lr: 1e-3\nwarmup_epoch: 5\n", "warmup_epoch: unknown recipe key (fix: did you mean 'warmup_epochs'?)"),
    ("lr: -1\n", "lr: must be > 0"),
    ("epochs: 2.5\n", "epochs: must be an integer"),
    ("betas: [0.9]\n", "betas: must be two numbers"),
    ("crop_scale: [0.9, 0.1]\n", "crop_scale: the low end exceeds the high end"),
    ("- lr\n", "a recipe is a mapping"),
])
def test_bad_recipes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(DocumentError) as err:
        load_recipe(path)
    assert message in str(err.value) and str(path) in str(err.value)
    with pytest.raises(DocumentError, match="did you mean 'emo'"):
        load_recipe("emo2")


class StandInTimm:
    """The part of timm's registry that designspace uses: ``register_model`` keys functions by ``__name__``,
    ``create_model(name, pretrained=False, **kwargs)`` calls them (as timm does)."""

    def __init__(self) -> None:
        self.models: dict[str, Callable[..., Any]] = {}

    def register_model(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if fn.__name__ in self.models:
            raise ValueError(f"duplicate model {fn.__name__}")
        self.models[fn.__name__] = fn
        return fn

    def create_model(self, name: str, pretrained: bool = False, **kwargs: Any) -> Any:
        return self.models[name](pretrained=pretrained, **kwargs)


def test_timm_registration_against_a_stand_in_registry(tmp_path: Path) -> None:
    timm = StandInTimm()
    (tmp_path / "winner.yaml").write_text(zoo.load("iformer_t").to_yaml())
    names = register_timm(archs={"my-winner": tmp_path / "winner.yaml"}, register_model=timm.register_model)
    assert "designspace_emo_1m" in names and "designspace_my_winner" in names
    assert len(names) == len(zoo.names()) + 1
    model = timm.create_model("designspace_emo_1m", num_classes=10, drop_path_rate=0.1)
    assert isinstance(model, ds.Network) and model.arch.num_classes == 10 and model.arch.drop_path_rate == 0.1
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 10)
    winner = timm.create_model("designspace_my_winner")
    assert winner.arch.fingerprint == zoo.load("iformer_t").fingerprint
    with pytest.raises(DesignspaceError, match="no pretrained weights"):
        timm.create_model("designspace_emo_1m", pretrained=True)
    with pytest.raises(DesignspaceError, match="unsupported arguments"):
        timm.create_model("designspace_emo_1m", global_pool="max")
    with pytest.raises(ValueError, match="duplicate"):  # a second registration is refused by the registry
        register_timm(zoo=True, register_model=timm.register_model)


def test_register_timm_without_timm_says_so() -> None:
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(DesignspaceError, match="timm is not installed"):
            register_timm()
    else:  # pragma: no cover - timm is not installable on the development machine
        assert "designspace_emo_1m" in register_timm()
