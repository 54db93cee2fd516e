"""Notebook 06: every model of the study as a variant (compact, healed, controls, teacher), its test metrics, speed
and quality kept, the comparisons with the controls and between criteria, compute to a target, and the scenarios."""

import pandas as pd
from tqdm.auto import tqdm

from lwadapter import compare, scenarios
from lwadapter.cold_items import cold_item_table, initial_model, restore_item_rows, without_items
from lwadapter.compact import compact_model
from lwadapter.evaluate import evaluate_model, history_batch
from lwadapter.healing import load_healed, merged
from lwadapter.lora_recommender import load_checkpoint
from lwadapter.recorded import recorded_checkpoint
from lwadapter.metrics import paired_test
from lwadapter.models import decoder_layers
from lwadapter.results import provenance, read_results_csv, read_results_json, write_json
from lwadapter.runtime import RunFolders
from lwadapter.selection import kept_list
from lwadapter.sequences import SequenceData
from lwadapter.study.base_models import load_base_models, model_families, read_base_models

HEADLINE = ["model", "criterion", "strategy", "healed", "adapter", "ndcg@10", "hr@10", "quality_kept", "ci_low",
            "ci_high", "p_value", "ndcg@10_unmasked", "ideal_speedup", "params"]
REPEATS = ["model", "criterion", "strategy", "k", "adapter", "seed", "ndcg@10", "quality_kept", "minus_random",
           "minus_first_k"]
RUN = ["model", "criterion", "strategy", "k", "adapter"]
VERSUS = ["model", "control", "criterion", "strategy", "k", "healed", "adapter", "ndcg@10", "quality_kept", "ci_low",
          "ci_high", "p_value"]


class Study:
    """Every model notebook 06 evaluates, as `variants` (one row each: name, reference, model (the teacher's family,
    base_models.model_families), criterion, strategy, k, kept_layers, healed, adapter, base_model) and `models`
    (name -> model): the compact models of selection.csv, the healed adapters of healing.csv (merged), and notebook
    02's controls of the teachers' families (from scratch, and the pretrained ones with fewer layers; never another
    LoRA-tuned LLM); `healing`: healing.csv, or None before notebook 05 has run."""

    def __init__(self, data: SequenceData, folders: RunFolders, base_models, device=None, dtype=None):
        out = folders.results
        config = read_base_models(folders)["config"]
        specs, family = config["models"], model_families(config)
        teachers = {family[name] for name in base_models}
        self.trained = load_base_models(data, folders, [name for name in specs if family[name] in teachers], device,
                                        dtype)
        self.full = {family[name]: self.trained[name] for name in base_models}
        self.teacher_of = dict(zip(self.full, base_models))
        self.n_full = {arch: len(decoder_layers(t.model)) for arch, t in self.full.items()}
        self.rows, self.models, self.heal_histories = [], {}, {}
        for r in read_results_csv(out / "selection.csv", dtype={"kept_layers": str}).itertuples():
            self._add(f"{r.model} {r.criterion} {r.strategy} k={r.k}", r.model, r.criterion, r.strategy, r.k,
                      compact_model(self.full[r.model].model, kept_list(r.kept_layers)), r.kept_layers)
        path = out / "healing.csv"  # notebook 05's healed adapters, when it has run
        self.healing = read_results_csv(path, dtype={"kept_layers": str}) if path.exists() else None
        if self.healing is not None:
            self._add_healed(data, self.healing, out / "healing.json")
        for name, t in self.trained.items():  # the controls: fewer layers, or the teacher's depth from scratch
            arch, layers = family[name], len(decoder_layers(t.model))
            route = "pretrained" if "pretrained" in specs[name] else "scratch"
            if name not in base_models and "lora" not in specs[name] and (layers < self.n_full[arch]
                                                                          or route == "scratch"):
                self._add(name, arch, "none", route, layers, t.model, base_model=name)
        self.variants = pd.DataFrame(self.rows)

    def _add(self, name, arch, criterion, strategy, k, model, kept_layers="", healed=False, adapter="none",
             base_model=None):
        self.rows.append(dict(name=name, reference=f"{arch} none full k={self.n_full[arch]}", model=arch,
                              criterion=criterion, strategy=strategy, k=k, kept_layers=kept_layers, healed=healed,
                              adapter=adapter, base_model=base_model or self.teacher_of[arch]))
        self.models[name] = model

    def _add_healed(self, data: SequenceData, healing: pd.DataFrame, results_file) -> None:
        """The adapters healing.json recorded, checked by their weights hash and merged (never retrained here)."""
        config = read_results_json(results_file)["config"]
        for r in healing[healing["model"].isin(self.full)].itertuples():
            teacher = self.full[r.model]
            if teacher.path.name != config["teachers"][r.model]:
                raise RuntimeError(f"notebook 05 healed {r.model} from {config['teachers'][r.model]}, not from "
                                   f"{teacher.path.name}: rerun notebook 05")
            name = f"{r.model} {r.criterion} {r.strategy} k={r.k} {r.adapter}"
            path = recorded_checkpoint(data.name, r.checkpoint, config.get("weights", {}), "05", results_file)
            healed = load_healed(path, teacher.model)
            self._add(name, r.model, r.criterion, r.strategy, r.k, merged(healed.model), r.kept_layers, True,
                      r.adapter)
            self.heal_histories[name] = healed.history

    def counts(self) -> pd.DataFrame:
        """How many variants of each kind: (model, healed, strategy) -> models."""
        return self.variants.groupby(["model", "healed", "strategy"]).size().rename("models").to_frame()

    def evaluate(self, data: SequenceData) -> tuple[dict, dict]:
        """(name -> per-user test metrics with the history masked, the same unmasked); identical kept sets and
        adapters are evaluated once."""
        per_user, unmasked, cache = {}, {}, {}
        for v in tqdm(self.variants.itertuples(), total=len(self.variants), desc="evaluate"):
            key = (v.model, v.kept_layers, v.adapter) if v.kept_layers else v.name
            if key not in cache:
                cache[key] = [evaluate_model(self.models[v.name], data, split="test", mask_history=mask)
                              for mask in (True, False)]
            per_user[v.name], unmasked[v.name] = cache[key]
        return per_user, unmasked

    def speed(self, data: SequenceData, batch: int = 128, repeats: int = 10) -> pd.DataFrame:
        """compare.measure_speed of every variant side by side with its full model, on the first `batch` test
        histories (one measurement per architecture)."""
        histories, targets = data.histories("test")
        return pd.concat([compare.measure_speed(self.full[arch].model, {v.name: self.models[v.name]
                                                                        for v in group.itertuples()},
                                                history_batch(self.full[arch].model, histories[:batch],
                                                              targets[:batch]), repeats=repeats)
                          for arch, group in self.variants.groupby("model")], ignore_index=True)

    def versus_controls(self, per_user: dict, k: int, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Every compact and healed variant at k against each control of k layers (from scratch; pretrained +
        adapted): quality relative to the control (`vs_control`), its interval and permutation p-value."""
        variants = self.variants
        controls = variants[variants["strategy"].isin(compare.ROUTES)].set_index(["model", "strategy", "k"])["name"]
        at_k = variants[(variants["k"] == k) & ~variants["strategy"].isin(compare.ROUTES)]
        versus = pd.DataFrame([{**v._asdict(), "control": compare.ROUTES[control],
                                **compare.relative_quality(per_user[v.name], per_user[controls[v.model, control, k]],
                                                           n=n_boot, seed=seed)}
                               for v in at_k.itertuples() for control in compare.ROUTES
                               if (v.model, control, k) in controls.index])
        return versus.reindex(columns=VERSUS).rename(columns={"quality_kept": "vs_control"})  # no control at k: empty

    def compute_to_target(self, base: pd.DataFrame, target_share: float) -> pd.DataFrame:
        """Training FLOPs each run needs to reach `target_share` of its teacher's validation NDCG@10 (first epoch at
        or above it): the controls with their pretraining, the healed runs alone and with the teacher's training
        amortised over the k healed from it."""
        variants, trained = self.variants, self.trained
        teacher_valid = {arch: t.history["valid_ndcg@10"].max() for arch, t in self.full.items()}
        base_compute = compare.route_compute(base)
        runs = [(v, trained[v.name].history, base_compute[v.name] - trained[v.name].record()["train_flops"], 0.0)
                for v in variants[variants["strategy"].isin(compare.ROUTES)].itertuples()]
        healed_k = variants[variants["healed"]].groupby("model")["k"].nunique()
        runs += [(v, self.heal_histories[v.name], 0.0, base_compute[v.base_model] / healed_k[v.model])
                 for v in variants[variants["healed"]].itertuples()]
        return pd.DataFrame([{"model": v.model, "k": v.k, "route": compare.ROUTES.get(v.strategy, "prune + heal"),
                              "method": v.strategy if v.strategy in compare.ROUTES else
                              f"{v.criterion} / {v.strategy} + {v.adapter}",
                              "target": target_share * teacher_valid[v.model],
                              "best_valid_ndcg@10": history["valid_ndcg@10"].max(),
                              "flops_to_target": compare.compute_to_reach(history, target_share
                                                                          * teacher_valid[v.model], offset),
                              "flops_to_target_teacher_amortised": compare.compute_to_reach(
                                  history, target_share * teacher_valid[v.model], offset + amortised)}
                             for v, history, offset, amortised in runs])

    def criteria_tests(self, per_user: dict, k: int, seed: int = 0) -> pd.DataFrame:
        """Every pair of criteria healed at k with the same adapter, paired on the test users: difference of mean
        NDCG@10, interval, permutation p-value, Holm's adjustment over the pairs of an adapter, `significant`."""
        variants, pairs = self.variants, []
        for (arch, adapter), group in variants[variants["healed"] & (variants["k"] == k)].groupby(["model", "adapter"]):
            names = list(group.drop_duplicates("kept_layers")["name"])  # identical kept sets: one healed model
            for i, a in enumerate(names):
                for b in names[i + 1:]:
                    pairs.append({"model": arch, "adapter": adapter, "a": " / ".join(a.split(" ")[1:3]),
                                  "b": " / ".join(b.split(" ")[1:3]),
                                  **paired_test(per_user[a]["ndcg@10"], per_user[b]["ndcg@10"], seed=seed)})
        tests = pd.DataFrame(pairs)
        if len(tests):
            tests["p_holm"] = tests.groupby(["model", "adapter"])["p_value"].transform(compare.holm)
            tests["significant"] = tests["p_holm"] < 0.05
        return tests

    def repeats(self, data: SequenceData, folders: RunFolders, per_user: dict) -> pd.DataFrame:
        """Notebook 05's headline runs healed under several seeds (healing_seeds.csv) on the test users, one row a run
        and seed: NDCG@10, quality kept (of the teacher's) and the mean per-user difference from random's and from the
        first-k cut's run of the same seed. The run under notebook 05's seed is its variant here; the others are
        loaded, hash-checked. Empty (REPEATS columns) before notebook 05 has written the file."""
        path, record = folders.results / "healing_seeds.csv", folders.results / "healing_seeds.json"
        if not path.exists():
            return pd.DataFrame(columns=REPEATS)
        runs = read_results_csv(path, dtype={"kept_layers": str})
        runs = runs[runs["model"].isin(self.full)]
        info = read_results_json(record)
        ndcg = []
        for r in tqdm(runs.itertuples(), total=len(runs), desc="seeds"):
            if r.seed == info["seed"]:
                users = per_user[f"{r.model} {r.criterion} {r.strategy} k={r.k} {r.adapter}"]
            else:
                checkpoint = recorded_checkpoint(data.name, r.checkpoint, info["config"]["weights"], "05", record)
                users = evaluate_model(merged(load_healed(checkpoint, self.full[r.model].model).model), data,
                                       split="test")
            ndcg.append(users.set_index("user").sort_index()["ndcg@10"])
        teacher = {arch: per_user[f"{arch} none full k={n}"]["ndcg@10"].mean() for arch, n in self.n_full.items()}
        runs = runs.assign(**{"ndcg@10": [u.mean() for u in ndcg]}).reset_index(drop=True)

        def minus(criterion, strategy):
            same = {(r.model, r.seed): ndcg[i] for i, r in enumerate(runs.itertuples())
                    if (r.criterion, r.strategy) == (criterion, strategy)}
            return [(ndcg[i] - same[r.model, r.seed]).mean() if (r.model, r.seed) in same else float("nan")
                    for i, r in enumerate(runs.itertuples())]

        return runs.assign(quality_kept=runs["ndcg@10"] / runs["model"].map(teacher),
                           minus_random=minus("random", "top-k"), minus_first_k=minus("position", "first-k"))[REPEATS]

    def scenario_variants(self, k: int, criteria) -> pd.DataFrame:
        """The variants the scenarios compare: full and from-scratch models, every healed one at k and the unhealed
        top-k compact models of `criteria` at k."""
        v = self.variants
        return v[v["strategy"].isin(["full", "scratch"]) | ((v["k"] == k) & (
            v["healed"] | ((v["strategy"] == "top-k") & v["criterion"].isin(criteria))))]

    def scenarios(self, data: SequenceData, folders: RunFolders, chosen: pd.DataFrame, per_user: dict,
                  cold_items: int = 3, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
        """scenarios.scenario_table of `chosen`'s models (scenario_variants), then the cold-start items
        (cold_item_cases)."""
        cases = scenarios.scenario_table({v.name: self.models[v.name] for v in chosen.itertuples()}, data,
                                         per_user=per_user, cold_items=cold_items, n_boot=n_boot, seed=seed)
        cold = self.cold_item_cases(data, folders, chosen, n_boot, seed)
        return pd.concat([cases, cold], ignore_index=True) if len(cold) else cases

    def cold_item_cases(self, data: SequenceData, folders: RunFolders, chosen: pd.DataFrame, n_boot: int = 1000,
                        seed: int = 0) -> pd.DataFrame:
        """The cold-start items scenario (cold_items.cold_item_table): notebook 02's models trained without the
        held-out items, hash-checked, an LLM's item rows of them given back their title start, the LLM also cut to
        the kept layers of `chosen`'s compact models of its family (unhealed: no healing saw this teacher), and
        most-popular. Empty when notebook 02 held out no items."""
        record = folders.results / "base_models.json"
        config = read_base_models(folders)["config"]
        items, checkpoints = config.get("held_out", {}).get("items", []), config.get("held_out", {}).get("checkpoints")
        if not items:
            return pd.DataFrame(columns=scenarios.COLUMNS)
        cold, families, models = without_items(data, items), model_families(config), {}
        for name, folder in checkpoints.items():
            base = name.removesuffix("-held-out-items")
            model = load_checkpoint(recorded_checkpoint(data.name, folder, config["weights"], "02", record), data).model
            if "lora" in config["models"][base]:
                restore_item_rows(model, initial_model(config["models"][base], data), items)
            models[name] = model
            if self.teacher_of.get(families[base]) != base:
                continue
            cuts = chosen[(chosen["model"] == families[base]) & (chosen["kept_layers"] != "")]
            for r in cuts.drop_duplicates(["criterion", "strategy", "kept_layers"]).itertuples():
                models[f"{name} {r.criterion} {r.strategy} k={r.k}"] = compact_model(model, kept_list(r.kept_layers))
        return cold_item_table(models, cold, items, n_boot=n_boot, seed=seed)


def headline(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """compact_eval's rows at k and the full models, the HEADLINE columns, best quality kept first."""
    return table[(table["k"] == k) | (table["strategy"] == "full")][HEADLINE]\
        .sort_values(["model", "healed", "quality_kept"], ascending=[True, True, False])


def write_evaluation(data: SequenceData, folders: RunFolders, base_models, k: int, scenario_criteria, cold_items: int, n_boot: int,
                     bench_batch: int, bench_repeats: int, healing: bool, seed: int = 0) -> None:
    """evaluation.json in the set's results folder: the evaluation's settings and the history-length cuts of the scenarios."""
    write_json(folders.results / "evaluation.json", provenance({
        "dataset": data.name, "base_models": base_models, "k": k, "scenario_criteria": scenario_criteria,
        "cold_items": cold_items, "n_boot": n_boot, "bench_batch": bench_batch, "bench_repeats": bench_repeats,
        "healing": healing, "history_cuts": scenarios.history_cuts([len(t) for t in data.train])}, seed))


def noise_table(repeats: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per repeated method: its seeds; test quality kept as mean, standard deviation, minimum and maximum over them,
    beside the half-width of its bootstrap interval over users (compact_eval's `table`, notebook 05's seed); its mean
    difference in NDCG@10 from random and from the first-k cut with the smallest over the seeds."""
    summary = repeats.groupby(RUN).agg(
        seeds=("seed", "nunique"), kept_mean=("quality_kept", "mean"), kept_sd=("quality_kept", "std"),
        kept_min=("quality_kept", "min"), kept_max=("quality_kept", "max"), minus_random=("minus_random", "mean"),
        minus_random_min=("minus_random", "min"), minus_first_k=("minus_first_k", "mean"),
        minus_first_k_min=("minus_first_k", "min")).reset_index()
    healed = table[table["healed"]].assign(bootstrap_half_width=(table["ci_high"] - table["ci_low"]) / 2)
    return summary.merge(healed[RUN + ["bootstrap_half_width"]], on=RUN, how="left")\
        .sort_values(["model", "kept_mean"], ascending=[True, False])


def versus_table(versus: pd.DataFrame) -> pd.DataFrame:
    """versus_controls without k, best against each control first."""
    return versus.drop(columns="k").sort_values(["model", "control", "healed", "vs_control"],
                                                ascending=[True, True, True, False])


def routes_table(routes: pd.DataFrame) -> pd.DataFrame:
    """compare.training_compute's routes with training compute in TFLOPs."""
    return routes.assign(train_tflops=routes["train_flops"] / 1e12).drop(columns="train_flops")\
        .sort_values(["model", "k", "route"])


def reach_table(reach: pd.DataFrame) -> pd.DataFrame:
    """compute_to_target in TFLOPs, healing alone and with the teacher amortised."""
    return reach.assign(**{c: reach[c] / 1e12 for c in ("flops_to_target", "flops_to_target_teacher_amortised")})\
        .rename(columns={"flops_to_target": "TFLOPs to target",
                         "flops_to_target_teacher_amortised": "+ teacher amortised"})\
        .sort_values(["model", "k", "route", "method"])


def scenario_ndcg(cases: pd.DataFrame) -> pd.DataFrame:
    """model x (scenario, group, definition, n): NDCG@10 of every scenario model."""
    return cases[cases["metric"] == "ndcg@10"].pivot_table(index=["scenario", "group", "definition", "n"],
                                                           columns="model", values="value", sort=False).T
