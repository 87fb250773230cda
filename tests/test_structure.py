"""The shape of the library: no import circles in raft/ (imports inside functions count too), no
Gradio in it, each engine backend one file under 200 lines, and the judge engine-agnostic."""

import ast
from pathlib import Path

import pytest

RAFT = Path(__file__).resolve().parent.parent / "raft"


def _module_name(path: Path) -> str:
    parts = path.relative_to(RAFT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in RAFT.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The raft modules a file imports anywhere in it (top level or inside a function)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(n for n in names if n in modules and n.startswith("raft"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = _imports(path, modules)
        parents = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
        graph[name] = deps - {name} - parents  # a package importing its own parents is no circle
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle_through_three_modules():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_raft_has_no_import_circle():
    assert find_cycle(_graph()) is None


def test_raft_does_not_import_gradio():
    for path in RAFT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] == "gradio" for n in names), path


@pytest.mark.parametrize("backend", ["transformers", "vllm"])
def test_each_backend_is_one_file_under_200_lines(backend):
    path = RAFT / "engines" / f"{backend}.py"
    assert len(path.read_text().splitlines()) < 200


def test_the_judge_imports_no_backend():
    deps = _graph()["raft.judge"]
    assert not any(d.startswith("raft.engines.") and d != "raft.engines.base" for d in deps), deps
    assert not {"raft.generation", "raft.models"} & deps
    tree = ast.parse((RAFT / "judge.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {"transformers", "vllm", "peft"} & imported


def test_the_loss_choices_everywhere_are_the_loss_table():
    """A loss is one function and one row of raft.loss.LOSSES: the config check, `train --help`,
    the Fine-tune tab's choices and the trainer's labelling all read that row."""
    import subprocess
    import sys

    from app.finetune_tab import INFO
    from raft.loss import LOSSES
    from raft.train.config import ConfigError, TrainConfig

    for name in LOSSES:
        assert TrainConfig(loss=name).loss == name
    with pytest.raises(ConfigError, match=", ".join(LOSSES)):
        TrainConfig(loss="hinge")
    help_text = subprocess.run(
        [sys.executable, "-m", "raft", "train", "--help"], capture_output=True, text=True, cwd=RAFT.parent, check=True
    ).stdout
    loss_line = " ".join(help_text.split("loss (default")[1].split("lam (default")[0].split())
    assert all(name in loss_line for name in LOSSES), loss_line
    assert all(f"{row.name}: {row.summary}" in INFO["loss"] for row in LOSSES.values())
    source = (RAFT.parent / "app" / "finetune_tab.py").read_text()
    assert "gr.Radio(list(LOSSES)" in source
    trainer = (RAFT / "train" / "trainer.py").read_text()
    assert not any(f'loss == "{name}"' in trainer for name in LOSSES)  # branches read the row, not the name


def test_every_error_of_the_library_and_the_studio_is_a_raft_error_shown_by_type():
    """One error contract: each *Error class in raft/ and app/ derives from raft.errors.RaftError,
    and the studio shows a RaftError's words by its type, not by a list of class names."""
    import importlib

    from raft.errors import RaftError

    found = []
    for folder in (RAFT, RAFT.parent / "app"):
        for path in folder.rglob("*.py"):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                    module = ".".join(path.relative_to(RAFT.parent).with_suffix("").parts)
                    found.append(getattr(importlib.import_module(module), node.name))
    assert len(found) >= 9
    assert [cls.__name__ for cls in found if not issubclass(cls, RaftError)] == []

    from app.messages import visitor_error

    class NewKind(RaftError):
        pass

    assert visitor_error(NewKind("the file has no rows: add one")).message == "the file has no rows: add one"
    assert "something went wrong (KeyError)" in visitor_error(KeyError("/srv/x")).message


LAYERS = [
    (
        "foundation",
        "raft raft.errors raft.text raft.paths raft.limits raft.output raft.disk_quota raft.context raft.stats "
        "raft.metrics "
        "raft.passfail raft.levels raft.repetition raft.streaming raft.synthetic raft.insample raft.runs raft.loss "
        "raft.job_logs raft.job_process raft.train.phase raft.train.sizing raft.pairwise raft.pair_report",
    ),
    (
        "prompts and data",
        "raft.prompts raft.rubrics raft.scores raft.files raft.atomic raft.columns raft.gold raft.prometheus "
        "raft.data raft.calibration raft.models raft.train.config raft.train.memory raft.pairs",
    ),
    (
        "engines and judge",
        "raft.engines.base raft.engines raft.generation raft.engines.transformers raft.engines.vllm raft.judge "
        "raft.calibrated raft.pair_judge raft.judgment raft.judge_manifest raft.judge_prompting raft.judge_scoring",
    ),
    (
        "training",
        "raft.train raft.train.trainer raft.train.callbacks raft.train.examples raft.train.saving raft.train.plan "
        "raft.distill",
    ),
    (
        "workflows",
        "raft.job_registry raft.jobs raft.batch raft.report raft.report_html raft.estimate raft.export raft.labels "
        "raft.label_files raft.selection raft.align raft.align_calibrate raft.align_findings raft.rewards "
        "raft.job_queue raft.job_runtime raft.job_setup raft.job_status raft.job_stop raft.label_rows raft.label_log "
        "raft.label_offers "
        "raft.pair_batch raft.report_markdown",
    ),
    ("interfaces", "raft.cli raft.label_cli raft.__main__"),
]
"""The library's layers, lowest first: a module imports only from its own layer or those below
(prompts -> data -> train -> judge -> app, never backwards). A new module gets a place here."""


def test_no_import_runs_back_up_the_layers():
    import sys

    sys.path.insert(0, str(RAFT.parent / "bench"))
    from structure import arrows, modules

    found = {name: path for name, path in modules().items() if name.startswith("raft")}
    layer = {m: i for i, (_, names) in enumerate(LAYERS) for m in names.split()}
    assert sorted(set(found) - set(layer)) == [], "place each new module in a layer of LAYERS"
    assert sorted(set(layer) - set(found)) == [], "a module in LAYERS is gone: take it out"
    upward = [
        f"{a} ({LAYERS[layer[a]][0]}) -> {b} ({LAYERS[layer[b]][0]})"
        for a, b in sorted(arrows(found))
        if layer[b] > layer[a]
    ]
    assert upward == []


def test_tabs_are_imported_by_app_main_alone():
    """A tab is one module that only app/main.py imports: what tabs share lives in modules of its
    own (own_files, finetune_form, mapping, plots, ...), which import no tab."""
    import sys

    sys.path.insert(0, str(RAFT.parent / "bench"))
    from structure import arrows, modules

    found = {name: path for name, path in modules().items() if name.startswith("app")}
    tabs = {name for name in found if name.endswith("_tab")}
    assert len(tabs) >= 7
    importers = sorted((a, b) for a, b in arrows(found) if b in tabs and a != "app.main")
    assert importers == []


def test_no_class_over_200_lines_and_no_library_function_over_60():
    """Issue 23's limits, counted by bench/structure.py (the script anyone runs for the figures)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "bench" / "structure.py"
    spec = importlib.util.spec_from_file_location("structure_counts", path)
    counts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(counts)
    classes, functions = counts.sizes(counts.modules())
    assert [c for c in classes if c[0] > counts.CLASS_LIMIT] == []
    assert [f for f in functions if f[0] > counts.FUNCTION_LIMIT and not f[2]] == []
