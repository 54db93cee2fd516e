"""Notebook 05: which compact models are healed (Fisher, the best published criterion by validation, random), with
which adapters, healing them, and what healing bought at each budget."""

import pandas as pd

from lwadapter.compact import compact_model
from lwadapter.evaluate import count_parameters, evaluate_model
from lwadapter.healing import adapter_size, gap_positions, heal_or_load
from lwadapter.recorded import weights_hash
from lwadapter.results import provenance, write_csv, write_json
from lwadapter.runtime import RunFolders
from lwadapter.selection import kept_list
from lwadapter.sequences import SequenceData

RUN_COLUMNS = ("epochs", "best_epoch", "stop_reason", "steps", "train_tokens", "train_flops", "train_seconds")
HEALING_COLUMNS = ["model", "criterion", "strategy", "k", "kept_layers", "adapter", "rank", "adapter_params", "epochs",
                   "best_epoch", "stop_reason", "steps", "train_tokens", "train_flops", "train_seconds",
                   "best_valid_ndcg@10", "valid_ndcg@10_before", "valid_ndcg@10_first_epoch", "first_epoch_steps",
                   "checkpoint"]
BUDGETS = {"valid_before": "0 steps", "valid_first": "1 epoch", "valid_after": "converged"}
FIRST_K = ("position", "first-k")  # SLMRec's cut (layer_selection), healed with and without the teacher
NO_KD = "lora-no-kd"  # the adapter fine-tuned on the labels alone
REPEAT_COLUMNS = ["model", "criterion", "strategy", "k", "kept_layers", "adapter", "seed", "epochs", "best_epoch",
                  "stop_reason", "train_seconds", "best_valid_ndcg@10", "checkpoint"]


def valid_ndcg(model, data: SequenceData) -> float:
    """Mean validation NDCG@10 (full ranking, history masked)."""
    return evaluate_model(model, data, split="valid")["ndcg@10"].mean()


def healing_recipe(base_train: dict, heal: dict) -> dict:
    """Notebook 02's recipe (weight decay, decay schedule, floor, stride) with healing's epochs, batch size, learning
    rate, warm-up and patience (`heal`)."""
    return {**{key: base_train[key] for key in ("weight_decay", "decay", "lr_floor", "stride")}, **heal}


def teacher_table(teachers: dict, names, full_valid: dict) -> pd.DataFrame:
    """One row a teacher (arch -> Trained, named by `names` in order): parameters and validation NDCG@10."""
    return pd.DataFrame([{"model": name, "params": count_parameters(t.model), "valid ndcg@10": full_valid[arch]}
                         for (arch, t), name in zip(teachers.items(), names)])


def unhealed(selection: pd.DataFrame, teachers: dict, data: SequenceData, ks) -> tuple[pd.DataFrame, dict]:
    """The compact models of selection.csv at `ks` (every criterion and strategy) with their validation NDCG@10
    before healing (`valid_before`), and (model, kept_layers) -> compact model (identical kept sets built once)."""
    compact = selection[selection["model"].isin(teachers) & (selection["strategy"] != "full") & selection["k"].isin(ks)]
    compacts = {(r.model, r.kept_layers): compact_model(teachers[r.model].model, kept_list(r.kept_layers))
                for r in compact.drop_duplicates(["model", "kept_layers"]).itertuples()}
    before = {key: valid_ndcg(model, data) for key, model in compacts.items()}
    return compact.assign(valid_before=[before[r.model, r.kept_layers] for r in compact.itertuples()]), compacts


def unhealed_table(compact: pd.DataFrame, k: int) -> pd.DataFrame:
    """method x model: validation NDCG@10 of every compact model at k before healing, best first."""
    at_k = compact[compact["k"] == k]
    return (at_k.assign(method=at_k["strategy"] + ": " + at_k["criterion"])
            .pivot(index="method", columns="model", values="valid_before")
            .sort_values(at_k["model"].iloc[0], ascending=False).rename_axis(columns="valid ndcg@10, unhealed"))


def best_published(compact: pd.DataFrame, k: int, published) -> dict[str, tuple[str, str]]:
    """arch -> (criterion, strategy) of the published criterion with the best validation NDCG@10 at k, unhealed."""
    at_k = compact[(compact["k"] == k) & compact["criterion"].isin(published)]
    return {arch: tuple(frame.sort_values("valid_before", ascending=False, kind="stable")
                        .iloc[0][["criterion", "strategy"]]) for arch, frame in at_k.groupby("model")}


def best_table(best: dict) -> pd.DataFrame:
    """arch -> "strategy: criterion" of the best published criterion."""
    return pd.Series({arch: f"{strategy}: {criterion}" for arch, (criterion, strategy) in best.items()},
                     name="best published criterion").to_frame()


def scarce_adapter(rank: int | None) -> str | None:
    """The name of the scarce-rank adapter ("lora-r1"), None without one."""
    return f"lora-r{rank}" if rank else None


def adapter_specs(layer_scores: pd.DataFrame, archs, lora: dict, fisher: str, bridge_rank: int, hidden_weight: float,
                  scarce_rank: int | None = None) -> dict[str, dict[str, dict]]:
    """arch -> adapter name -> heal() keywords: "lora"; "lora+bridge" (bridges at the gaps and hidden matching
    weighted by the Fisher scores of `fisher`); NO_KD, "lora" fine-tuned on the labels alone (no teacher);
    "lora-r<scarce_rank>" when set."""
    specs = {}
    for arch in archs:
        scores = layer_scores[(layer_scores["model"] == arch) & (layer_scores["criterion"] == fisher)]
        specs[arch] = {"lora": lora, "lora+bridge": {**lora, "bridge_rank": bridge_rank, "hidden_weight": hidden_weight,
                                                     "layer_scores": scores.sort_values("layer")["score"].tolist()},
                       NO_KD: {**lora, "kd_weight": 0.0}}
        if scarce_rank:
            specs[arch][scarce_adapter(scarce_rank)] = {**lora, "rank": scarce_rank}
    return specs


def headline_methods(fisher: str, best: tuple[str, str]) -> set[tuple[str, str]]:
    """(criterion, strategy) of the headline comparison: Fisher, the best published criterion (`best`), random and
    SLMRec's first-k cut."""
    return {(fisher, "top-k"), best, ("random", "top-k"), FIRST_K}


def headline_rows(frame: pd.DataFrame, fisher: str, best: dict) -> pd.DataFrame:
    """The rows of `frame` that hold a headline method of their model (`best`: model -> best published method)."""
    return frame[[(r.criterion, r.strategy) in headline_methods(fisher, best[r.model]) for r in frame.itertuples()]]


def healing_plan(compact: pd.DataFrame, k: int, fisher: str, best: dict, sweep_all: bool = False,
                 heal_all: bool = False, scarce_rank: int | None = None, scarce_all: bool = True) -> pd.DataFrame:
    """The rows of `compact` to heal, one per adapter: Fisher, the best published criterion, random and SLMRec's
    first-k cut at k (at every k with `sweep_all`, else Fisher alone at the other k; every method at k with
    `heal_all`) with "lora"; Fisher top-k at k also with "lora+bridge"; the first-k cut at k also with NO_KD (fine-tuned
    without the teacher); every method at k (the headline methods alone without `scarce_all`) also with LoRA of
    `scarce_rank` when given."""
    def chosen(row):
        method = (row.criterion, row.strategy)
        if row.k != k and not sweep_all:
            return method == (fisher, "top-k")
        return method in headline_methods(fisher, best[row.model]) or (heal_all and row.k == k)

    scarce = scarce_adapter(scarce_rank)
    plan = compact[[chosen(r) for r in compact.itertuples()]].assign(adapter="lora")
    at_k = plan[plan["k"] == k]
    bridged = at_k[(at_k["criterion"] == fisher) & (at_k["strategy"] == "top-k")]
    cut = at_k[(at_k["criterion"] == FIRST_K[0]) & (at_k["strategy"] == FIRST_K[1])]
    scarce_runs = at_k if scarce_all else headline_rows(at_k, fisher, best)
    return pd.concat([plan, bridged.assign(adapter="lora+bridge"), cut.assign(adapter=NO_KD),
                      scarce_runs.assign(adapter=scarce) if scarce else None], ignore_index=True)


def run_key(row) -> tuple:
    """(model, kept_layers, adapter): one healed checkpoint (identical kept sets are healed once)."""
    return row.model, row.kept_layers, row.adapter


def heal_plan(plan: pd.DataFrame, teachers: dict, data: SequenceData, adapters: dict, train: dict, seed: int = 0,
              force: bool = False) -> dict:
    """run_key -> Trained: every planned run healed with heal_or_load (or its cached adapter)."""
    return {run_key(r): heal_or_load(f"{r.model}-k{r.k}-{r.adapter.replace('+', '-')}", data, teachers[r.model],
                                     kept_list(r.kept_layers), adapters[r.model][r.adapter], train, seed=seed,
                                     force=force)
            for r in plan.drop_duplicates(["model", "kept_layers", "adapter"]).itertuples()}


def healing_results(plan: pd.DataFrame, healed: dict, adapters: dict) -> pd.DataFrame:
    """The plan with each run's rank, adapter size, cost and validation NDCG@10 before, after one epoch and at the
    restored best epoch."""
    runs = [healed[run_key(r)] for r in plan.itertuples()]
    return plan.assign(
        rank=[adapters[r.model][r.adapter]["rank"] for r in plan.itertuples()],
        adapter_params=[adapter_size(t.path)["adapter_params"] for t in runs],
        **{column: [t.record()[column] for t in runs] for column in RUN_COLUMNS},
        valid_after=[t.history["valid_ndcg@10"].max() for t in runs],
        valid_first=[t.history["valid_ndcg@10"].iloc[0] for t in runs],
        first_steps=[int(t.history["steps"].iloc[0]) for t in runs],
        checkpoint=[t.path.name for t in runs])


def before_after(results: pd.DataFrame, full_valid: dict) -> pd.DataFrame:
    """Epochs, stop reason, validation NDCG@10 before and after healing and both as a share of the full model's."""
    full = results["model"].map(full_valid)
    return (results.assign(before_share=results["valid_before"] / full, after_share=results["valid_after"] / full)
            .set_index(["model", "k", "strategy", "criterion", "adapter"])
            [["epochs", "stop_reason", "valid_before", "valid_after", "before_share", "after_share"]]
            .rename(columns={"valid_before": "valid ndcg@10 before", "valid_after": "valid ndcg@10 after",
                             "before_share": "before / full", "after_share": "after / full"})
            .sort_index())


def heal_repeats(results: pd.DataFrame, k: int, fisher: str, best: dict, seeds, teachers: dict, data: SequenceData,
                 adapters: dict, train: dict, seed: int = 0, force: bool = False) -> tuple[pd.DataFrame, dict]:
    """The headline methods' plain-LoRA runs at k (the rows of `results`, healed under `seed`) healed again under each
    other seed of `seeds`: (one row a run and seed, `seed`'s included; (run_key, seed) -> Trained of the repeats)."""
    at_k = results[(results["k"] == k) & (results["adapter"] == "lora")]
    runs = headline_rows(at_k, fisher, best)
    frames, repeated = [runs.assign(seed=seed)], {}
    for other in sorted(set(seeds) - {seed}):
        healed = heal_plan(runs, teachers, data, adapters, train, seed=other, force=force)
        frames.append(healing_results(runs, healed, adapters).assign(seed=other))
        repeated |= {(key, other): t for key, t in healed.items()}
    return pd.concat(frames, ignore_index=True).rename(columns={"valid_after": "best_valid_ndcg@10"}), repeated


def write_repeats(folders: RunFolders, repeats: pd.DataFrame, repeated: dict, seed: int = 0) -> None:
    """healing_seeds.csv (one row a run and seed) and healing_seeds.json (the seeds and the weights hash of every
    repeated checkpoint; `seed`'s runs are healing.json's) in the set's results folder."""
    write_csv(folders.results / "healing_seeds.csv", repeats[REPEAT_COLUMNS])
    write_json(folders.results / "healing_seeds.json", provenance(
        {"dataset": folders.dataset, "seeds": sorted(int(s) for s in repeats["seed"].unique()),
         "weights": {t.path.name: weights_hash(t.path) for t in repeated.values()}}, seed))


def repeat_table(repeats: pd.DataFrame) -> pd.DataFrame:
    """(model, method) x seed: best validation NDCG@10, with the mean and standard deviation over seeds."""
    table = repeats.assign(method=repeats["strategy"] + ": " + repeats["criterion"])\
        .pivot_table(index=["model", "method"], columns="seed", values="best_valid_ndcg@10")
    return table.assign(mean=table.mean(axis=1), sd=table.std(axis=1))


def healing_curves(plan: pd.DataFrame, healed: dict, compact: pd.DataFrame) -> pd.DataFrame:
    """Every healed run's history with `model`, `run` (its label) and `unhealed` (its compact model's validation
    NDCG@10 before healing)."""
    runs = plan.drop_duplicates(["model", "kept_layers", "adapter"])
    before = compact.drop_duplicates(["model", "kept_layers"]).set_index(["model", "kept_layers"])["valid_before"]
    return pd.concat([healed[run_key(r)].history.assign(model=r.model, unhealed=before[r.model, r.kept_layers],
                                                         run=f"{r.strategy}: {r.criterion}, k={r.k} ({r.adapter})")
                      for r in runs.itertuples()], ignore_index=True)


def healing_budget(results: pd.DataFrame, k: int) -> pd.DataFrame:
    """Long frame: validation NDCG@10 of each method at k per adapter after no healing, one epoch and converged."""
    at_k = results[results["k"] == k].assign(method=lambda f: f["strategy"] + ": " + f["criterion"])
    budget = at_k.melt(id_vars=["model", "adapter", "method"], value_vars=list(BUDGETS), var_name="budget",
                       value_name="valid ndcg@10")
    return budget.assign(budget=budget["budget"].map(BUDGETS))


def budget_table(budget: pd.DataFrame) -> pd.DataFrame:
    """(model, method) x (adapter, budget): validation NDCG@10."""
    return budget.pivot_table(index=["model", "method"], columns=["adapter", "budget"], values="valid ndcg@10")


def budget_spread(budget: pd.DataFrame) -> pd.DataFrame:
    """Per model, adapter and budget: the worst and best method and the spread between them."""
    spread = budget.groupby(["model", "adapter", "budget"])["valid ndcg@10"].agg(["min", "max"])
    return spread.assign(spread=spread["max"] - spread["min"])


def write_healing(folders: RunFolders, results: pd.DataFrame, teachers: dict, adapters: dict, train: dict,
                  fisher: str, published, best: dict, healed: dict, seed: int = 0) -> None:
    """healing.csv (one row a healed run) and healing.json (teachers, adapters, recipe, best, and the weights hash
    of every `healed` checkpoint) in the set's results folder."""
    out = folders.results
    write_csv(out / "healing.csv", results.rename(columns={
        "valid_after": "best_valid_ndcg@10", "valid_before": "valid_ndcg@10_before",
        "valid_first": "valid_ndcg@10_first_epoch", "first_steps": "first_epoch_steps"})[HEALING_COLUMNS])
    write_json(out / "healing.json", provenance(
        {"dataset": folders.dataset, "teachers": {arch: t.path.name for arch, t in teachers.items()}, "adapters": adapters,
         "train": train, "fisher": fisher, "published": published,
         "best_published": {arch: list(method) for arch, method in best.items()},
         "weights": {t.path.name: weights_hash(t.path) for t in healed.values()}}, seed))


def adapter_sizes(healed: dict, compacts: dict, adapters: dict) -> pd.DataFrame:
    """One row a healed checkpoint: rank, bridges, stored adapter numbers and bytes, and their share of the compact
    model they adapt."""
    table = pd.DataFrame([{"model": m, "kept layers": kept, "adapter": adapter, "rank": adapters[m][adapter]["rank"],
                           "bridges": len(gap_positions(kept_list(kept))) if adapter == "lora+bridge" else 0,
                           **adapter_size(t.path), "compact params": count_parameters(compacts[m, kept])}
                          for (m, kept, adapter), t in healed.items()])
    return table.assign(**{"adapter / compact": table["adapter_params"] / table["compact params"]})
