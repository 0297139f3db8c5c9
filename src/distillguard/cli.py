"""The ``distillguard`` command.

Exit codes: 0 done; 1 done and accounts were flagged (only with ``--fail-on-flag``);
2 bad input or configuration (the message names the file, line or field); 3 internal error.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from distillguard import __version__
from distillguard.errors import DistillguardError

app = typer.Typer(
    help="Find, explain and stop model-distillation campaigns in LLM API logs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="List and test the detection rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
bench_app = typer.Typer(help="Measure detection quality and performance on fixed inputs.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
console = Console(stderr=True)
out_console = Console()

EXIT_OK, EXIT_FLAGGED, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(EXIT_INPUT)


def _version(value: bool) -> None:
    if value:
        out_console.print(f"distillguard {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """distillguard: scan API logs for distillation (output-harvesting) campaigns."""


@app.command()
def scan(
    logs: Annotated[Optional[list[Path]], typer.Argument(help="Log files (LiteLLM, OpenAI exchanges, OTLP/JSON, mapped).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for accounts.jsonl, summary.json, report.html.")] = Path("distillguard-out"),
    demo: Annotated[bool, typer.Option("--demo", help="Generate the bundled demo traffic and scan it.")] = False,
    threshold: Annotated[Optional[float], typer.Option(help="Flag accounts scoring at or above this (default: the model's operating point).")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="Input format (default: detected per file).")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="YAML column mapping for generic JSONL/CSV/Parquet.")] = None,
    accounts: Annotated[Optional[Path], typer.Option(help="Accounts table (CSV/JSONL/Parquet) with account_id and attributes.")] = None,
    model: Annotated[Optional[Path], typer.Option(help="Model file from `distillguard train` (default: the shipped one).")] = None,
    rules: Annotated[Optional[list[Path]], typer.Option("--rules", help="Extra rule directories (YAML).")] = None,
    secret_file: Annotated[Optional[Path], typer.Option(help="File holding the hashing secret (else $DISTILLGUARD_SECRET).")] = None,
    keep_text: Annotated[bool, typer.Option(help="Also store raw prompt/completion text (off by default, for privacy).")] = False,
    store: Annotated[Optional[Path], typer.Option(help="DuckDB store file (default: OUT/distillguard.duckdb).")] = None,
    link: Annotated[bool, typer.Option(help="Link accounts into campaign clusters (clusters.jsonl, graph.json).")] = True,
    end_users: Annotated[bool, typer.Option(help="Also judge the end users inside shared accounts (resellers) one by one.")] = True,
    workers: Annotated[Optional[int], typer.Option(help="Ingest worker processes (default: one per CPU for large inputs; 1 = serial).")] = None,
    top: Annotated[int, typer.Option(help="Rows in the terminal table.")] = 20,
    report: Annotated[bool, typer.Option(help="Write report.html.")] = True,
    fail_on_flag: Annotated[bool, typer.Option(help="Exit 1 when any account is flagged.")] = False,
) -> None:
    """Score every account in LOGS for harvesting and write accounts.jsonl, summary.json and report.html.

    With no LOGS and an existing --store (e.g. the one `distillguard serve` records to), scan what is stored.
    """
    from distillguard.report.terminal import print_summary, progress_bar
    from distillguard.scan import ScanOptions, run_scan

    try:
        paths = list(logs or [])
        if demo:
            from distillguard.simulate import run_scenario

            console.print("generating the bundled demo traffic (scenario 'demo', seed 0)…")
            sim = run_scenario("demo", out / "demo-traffic", seed=0, corpora="bundled")
            paths.append(Path(sim.traffic))
            accounts = accounts or Path(sim.accounts_file)
        if not paths and not (store and store.exists()):
            _fail(DistillguardError("no log files given (or use --demo, or --store with an existing store, e.g. the gateway's)"))
        for p in paths:
            if not p.exists():
                _fail(DistillguardError(f"{p}: file not found"))
        options = ScanOptions(
            threshold=threshold, model_path=str(model) if model else None, rules_dirs=[str(r) for r in rules or []],
            fmt=fmt, mapping=str(mapping) if mapping else None, accounts_path=str(accounts) if accounts else None,
            secret_file=str(secret_file) if secret_file else None, keep_text=keep_text,
            store_path=str(store) if store else None, workers=workers, link=link, end_users=end_users,
        )  # fmt: skip
        with progress_bar(None, "ingesting") as bar:
            result = run_scan(paths, out, options, on_progress=bar.advance, on_stage=lambda s: console.print(f"[dim]{s}…[/]"))
        activity = None
        if report:
            from distillguard.scan import hourly_activity

            activity = hourly_activity(result.store, [f.account_id for f in result.findings[:50]])
        # the store is not read again: its closing checkpoint (~2 s after a 1M-event ingest, DuckDB
        # without the GIL) runs while the report is drawn and the table printed
        closing = ThreadPoolExecutor(1, thread_name_prefix="store-close")
        closed = closing.submit(result.store.close)
        closing.shutdown(wait=False)
        if report:
            from distillguard.report.html import write_html

            path = out / "report.html"
            clusters = [c.to_dict() for c in result.links.clusters if c.flagged or c.bound] if result.links else None
            write_html(path, result.findings, result.summary, result.features.reset_index(), activity, clusters)
            result.files["report"] = path
        print_summary(result.findings, result.summary, console=out_console, top=top)
        closed.result()  # a failed close (the store file) is this command's error too
        for name, path in result.files.items():
            out_console.print(f"[dim]{name}:[/] {path}")
        if result.ingest and result.ingest.quarantined:
            console.print(f"[yellow]{result.ingest.quarantined} lines quarantined:[/] " + "; ".join(result.ingest.quarantine_examples[:3]))
    except DistillguardError as exc:
        _fail(exc)
    if fail_on_flag and result.summary.n_flagged:
        raise typer.Exit(EXIT_FLAGGED)


@app.command()
def ingest(
    logs: Annotated[list[Path], typer.Argument(help="Log files to add to the store.")],
    store: Annotated[Path, typer.Option(help="DuckDB store file.")] = Path("distillguard.duckdb"),
    fmt: Annotated[Optional[str], typer.Option("--format", help="Input format (default: detected per file).")] = None,
    mapping: Annotated[Optional[Path], typer.Option(help="YAML column mapping for generic JSONL/CSV/Parquet.")] = None,
    accounts: Annotated[Optional[Path], typer.Option(help="Accounts table to load as well.")] = None,
    secret_file: Annotated[Optional[Path], typer.Option(help="File holding the hashing secret.")] = None,
    keep_text: Annotated[bool, typer.Option(help="Also store raw prompt/completion text.")] = False,
    quarantine: Annotated[Optional[Path], typer.Option(help="Where to write set-aside lines (default: next to the store).")] = None,
    parquet: Annotated[Optional[Path], typer.Option(help="Also export the store's tables as Parquet to this directory.")] = None,
) -> None:
    """Normalize LOGS into the store (no duplicates on re-ingest); bad lines are counted and quarantined."""
    from distillguard.ingest.pipeline import ingest_logs
    from distillguard.privacy import Hasher
    from distillguard.report.terminal import progress_bar
    from distillguard.store.duckdb import DuckDBStore

    try:
        for p in logs:
            if not p.exists():
                _fail(DistillguardError(f"{p}: file not found"))
        hasher = Hasher.from_config(secret_file)
        db = DuckDBStore(store)
        qpath = quarantine or store.with_suffix(".quarantine.jsonl")
        with progress_bar(None, "ingesting") as bar:
            report = ingest_logs(
                logs, db, hasher, accounts_path=accounts, quarantine_path=qpath, fmt=fmt, mapping=mapping,
                keep_text=keep_text, on_progress=bar.advance,
            )  # fmt: skip
        out_console.print(report.explain())
        if parquet:
            for path in db.export_parquet(parquet):
                out_console.print(f"[dim]parquet:[/] {path}")
    except DistillguardError as exc:
        _fail(exc)


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the model JSON.")] = Path("distillguard-model.json"),
    scenario: Annotated[str, typer.Option(help="Simulator scenario to train on (when no --logs are given).")] = "training",
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 0,
    logs: Annotated[Optional[list[Path]], typer.Option("--logs", help="Your own logs to train on (with --labels).")] = None,
    labels: Annotated[Optional[Path], typer.Option(help="JSONL of {account_id, is_attack} analyst labels for --logs.")] = None,
    corpora: Annotated[Optional[Path], typer.Option(help="Corpora directory for the simulator (default: bundled sample).")] = None,
    target_fpr: Annotated[float, typer.Option(help="Benign false-positive rate the operating point is chosen for.")] = 0.001,
) -> None:
    """Fit the supervised detector and the calibrated ensemble; write the model JSON.

    The shipped model is reproduced by: distillguard train --scenario training --seed 0 --out src/distillguard/models/default.json
    """
    from distillguard.training import train_model

    try:
        with tempfile.TemporaryDirectory(prefix="distillguard-train-") as tmp:
            model, report = train_model(
                Path(tmp), scenario=scenario, seed=seed, logs=logs, labels_path=labels,
                corpora=str(corpora) if corpora else None, target_fpr=target_fpr,
                on_stage=lambda s: console.print(f"[dim]{s}…[/]"),
            )  # fmt: skip
        path = model.save(out)
        out_console.print(report)
        out_console.print(f"model written to {path} (threshold {model.threshold:.3f})")
    except DistillguardError as exc:
        _fail(exc)


@app.command()
def simulate(
    scenario: Annotated[str, typer.Argument(help="Scenario name (see --list).")] = "demo",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("distillguard-sim"),
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="litellm | openai | otlp")] = "litellm",
    corpora: Annotated[Optional[str], typer.Option(help="Corpora directory, or 'bundled' for the packaged sample.")] = None,
    scale: Annotated[float, typer.Option(help="Multiply every persona's volume and account count.")] = 1.0,
    days: Annotated[Optional[float], typer.Option(help="Length of the simulated period.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the scenarios and exit.")] = False,
) -> None:
    """Write labeled synthetic API traffic composed from real public text (logs, accounts.csv, labels.jsonl)."""
    from distillguard.simulate import SCENARIOS, run_scenario

    if list_:
        for name in SCENARIOS:
            out_console.print(name)
        return
    try:
        result = run_scenario(scenario, out, seed=seed, fmt=fmt, corpora=corpora, scale=scale, days=days)
    except DistillguardError as exc:
        _fail(exc)
    except KeyError:
        _fail(DistillguardError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}"))
    out_console.print(result)


@app.command()
def serve(
    config: Annotated[Optional[Path], typer.Option(help="Gateway config file (YAML/JSON, fields of GatewayConfig); options below override it.")] = None,
    upstream: Annotated[Optional[str], typer.Option(help="Upstream base URL including /v1, e.g. https://api.openai.com/v1.")] = None,
    upstream_key_env: Annotated[Optional[str], typer.Option(help="Env var holding the upstream API key (default DISTILLGUARD_UPSTREAM_KEY).")] = None,
    keys: Annotated[Optional[Path], typer.Option(help="Client API keys -> accounts (YAML/JSON).")] = None,
    store: Annotated[Optional[Path], typer.Option(help="DuckDB store the exchanges are recorded to.")] = None,
    wal_dir: Annotated[Optional[Path], typer.Option(help="Write-ahead directory (replayed at start).")] = None,
    secret_file: Annotated[Optional[Path], typer.Option(help="File holding the hashing secret (else $DISTILLGUARD_SECRET).")] = None,
    policy: Annotated[Optional[Path], typer.Option(help="Policy YAML (hot-reloaded).")] = None,
    redis_url: Annotated[Optional[str], typer.Option(help="Share enforcement state across replicas through Redis.")] = None,
    model: Annotated[Optional[Path], typer.Option(help="Model file for online scoring (default: the shipped one).")] = None,
    decisions_from: Annotated[Optional[Path], typer.Option(help="A `distillguard scan` output directory to load as decisions.")] = None,
    host: Annotated[Optional[str], typer.Option(help="Listen address (default 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Listen port (default 8000).")] = None,
    max_body_bytes: Annotated[Optional[int], typer.Option(help="Larger request bodies get 413 (default 4 MiB).")] = None,
    read_timeout: Annotated[Optional[float], typer.Option(help="Seconds of upstream silence before 504 (default 120).")] = None,
    wal_fsync_interval: Annotated[Optional[float], typer.Option(help="fsync the WAL this often; 0 = on every record (default 0.05).")] = None,
    keep_text: Annotated[Optional[bool], typer.Option("--keep-text/--no-keep-text", help="Also store clear prompt/completion text.")] = None,
) -> None:
    """Run the OpenAI-compatible gateway: authenticate, decide, enforce, forward, record every exchange."""
    from distillguard.gateway.app import serve as run_gateway
    from distillguard.gateway.config import GatewayConfig

    try:
        cfg = GatewayConfig.from_file(config) if config else GatewayConfig()
        as_str = lambda p: str(p) if p is not None else None  # noqa: E731
        cfg = cfg.with_overrides(
            upstream_url=upstream, upstream_key_env=upstream_key_env, keys_file=as_str(keys), store_path=as_str(store),
            wal_dir=as_str(wal_dir), secret_file=as_str(secret_file), policy_path=as_str(policy), redis_url=redis_url,
            model_path=as_str(model), decisions_dir=as_str(decisions_from), host=host, port=port,
            max_body_bytes=max_body_bytes, read_timeout_s=read_timeout, wal_fsync_interval_s=wal_fsync_interval,
            keep_text=keep_text,
        )  # fmt: skip
        if not cfg.keys_file:
            _fail(DistillguardError("the gateway needs --keys (a file mapping API keys to accounts)"))
        console.print(f"distillguard gateway on http://{cfg.host}:{cfg.port} -> {cfg.upstream_url} (store {cfg.store_path})")
        run_gateway(cfg)
    except DistillguardError as exc:
        _fail(exc)


@rules_app.command("list")
def rules_list(rules: Annotated[Optional[list[Path]], typer.Option("--rules", help="Extra rule directories.")] = None) -> None:
    """Show every rule with its severity and conditions."""
    from distillguard.detectors.rules import load_rules

    try:
        for rule in load_rules(*(rules or [])):
            cond = " and ".join(f"{c.feature} {c.op} {c.value:g}" for c in rule.when)
            out_console.print(f"[bold]{rule.id}[/] (severity {rule.severity}): {rule.title}\n    when {cond}")
    except DistillguardError as exc:
        _fail(exc)


@rules_app.command("test")
def rules_test(rules: Annotated[Optional[list[Path]], typer.Option("--rules", help="Extra rule directories.")] = None) -> None:
    """Run every rule's inline test cases."""
    from distillguard.detectors.rules import load_rules

    try:
        loaded = load_rules(*(rules or []))
    except DistillguardError as exc:
        _fail(exc)
    failures = [msg for rule in loaded for msg in rule.run_tests()]
    for msg in failures:
        console.print(f"[red]FAIL[/] {msg}")
    n_cases = sum(len(r.tests) for r in loaded)
    out_console.print(f"{len(loaded)} rules, {n_cases} cases, {len(failures)} failed")
    if failures:
        raise typer.Exit(EXIT_FLAGGED)


@bench_app.command("throughput")
def bench_throughput(
    events: Annotated[int, typer.Option(help="Events in the benchmark log (LiteLLM JSONL.gz with full text).")] = 1_000_000,
    workdir: Annotated[Path, typer.Option(help="Where the cached input and scan outputs go.")] = Path("bench-out"),
    seed: Annotated[int, typer.Option(help="Simulator seed of the input.")] = 0,
    repeat: Annotated[int, typer.Option(help="Scan the same input this many times, side by side.")] = 1,
    link: Annotated[bool, typer.Option(help="Scan with campaign linking (--no-link: without).")] = True,
) -> None:
    """End-to-end scan throughput (events/s) and peak memory (scan + workers) on a fixed simulated log."""
    import json as _json

    from distillguard.bench.throughput import bench_input, measure_scan_throughput

    console.print(f"preparing the {events:,}-event input (cached after the first run)…")
    bench_input(workdir, events, seed)
    runs = []
    for i in range(repeat):
        result = measure_scan_throughput(workdir, events, seed, link=link)
        runs.append(result)
        out_console.print(
            f"run {i + 1}: {result['events']:,} events in {result['wall_s']} s = {result['events_per_s']:,} events/s, "
            f"peak memory of the process tree {result['peak_tree_rss_mb']} MB RSS / {result['peak_tree_pss_mb']} MB PSS "
            f"(main process {result['peak_main_rss_mb']} MB); CPU {result['tree_cpu_s']} s (main process {result['main_cpu_s']} s); stages {result['stage_s']}"
        )
    (workdir / "throughput.json").write_text(_json.dumps(runs, indent=1))
    out_console.print(f"results: {workdir / 'throughput.json'}")


@bench_app.command("quality")
def bench_quality(
    scenarios: Annotated[Optional[list[str]], typer.Argument(help="Scenarios to run (default: every attack scenario and 'everything').")] = None,
    workdir: Annotated[Path, typer.Option(help="Where traffic, scans and results go.")] = Path("bench-out/quality"),
    seed: Annotated[int, typer.Option(help="Simulator seed (the shipped model trained on seed 0 of another scenario).")] = 1000,
    scale: Annotated[float, typer.Option(help="Scale every scenario (0.1 for a quick smoke run).")] = 1.0,
    corpora: Annotated[Optional[str], typer.Option(help="Corpora directory, or 'bundled'.")] = "bundled",
    model: Annotated[Optional[Path], typer.Option(help="Model file (default: the shipped one).")] = None,
    markdown: Annotated[Optional[Path], typer.Option(help="Also write the table as a markdown page (e.g. docs/benchmarks.md).")] = None,
    replay: Annotated[bool, typer.Option(help="Replay each scenario hour by hour to measure exchanges harvested before the first flag.")] = True,
) -> None:
    """Per-scenario ROC AUC, recall at 0.1%/1% FPR, campaign recall, hard-negative FPs, beside baselines."""
    from distillguard.bench.quality import run_quality_bench
    from distillguard.simulate import SCENARIOS

    names = scenarios or [n for n in SCENARIOS if n not in ("demo", "training")]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        _fail(DistillguardError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}"))
    if markdown:  # before the run, not after minutes of it: a page that cannot be written fails now
        try:
            markdown.parent.mkdir(parents=True, exist_ok=True)
            markdown.touch()
        except OSError as exc:
            _fail(DistillguardError(f"{markdown}: cannot write the markdown page: {exc.strerror or exc}"))
    try:
        rows = run_quality_bench(
            workdir, names, seed=seed, scale=scale, corpora=corpora, model_path=str(model) if model else None,
            replay=replay, on_stage=lambda s: console.print(f"[dim]{s}…[/]"),
        )  # fmt: skip
    except DistillguardError as exc:
        _fail(exc)
    from distillguard.bench.quality import benchmark_page, markdown_table

    out_console.print(markdown_table(rows))
    if markdown:
        command = " ".join(["distillguard bench quality", *(scenarios or []), f"--seed {seed}", f"--scale {scale}", f"--corpora {corpora}"])
        markdown.write_text(benchmark_page(rows, command, plots=markdown.stem))
        for plot in ("roc", "harvested"):  # beside the page, which shows them
            shutil.copyfile(workdir / f"{plot}.png", markdown.with_name(f"{markdown.stem}-{plot}.png"))
        out_console.print(f"markdown page: {markdown}")
    out_console.print(f"results: {workdir / 'results.json'}, {workdir / 'results.md'}, plots {workdir / 'roc.png'}, {workdir / 'harvested.png'}")


@bench_app.command("linking")
def bench_linking(
    accounts: Annotated[int, typer.Option(help="Accounts in the synthetic store.")] = 100_000,
    events: Annotated[int, typer.Option(help="Events in the synthetic store.")] = 10_000_000,
    workdir: Annotated[Path, typer.Option(help="Where the store and linking.json go.")] = Path("bench-out/linking"),
    seed: Annotated[int, typer.Option(help="Seed of the synthetic population.")] = 0,
    memory_limit: Annotated[str, typer.Option(help="DuckDB memory_limit (it spills to disk past this).")] = "1GB",
    small: Annotated[bool, typer.Option("--small", help="2,000 accounts / 100,000 events: the CI smoke size.")] = False,
) -> None:
    """Linking time, peak memory and campaign recall on a seeded synthetic store of N accounts / M events."""
    from distillguard.bench.linking import SMALL, results_table, run_linking_bench, write_results

    if small:
        accounts, events = SMALL
    result = run_linking_bench(workdir, accounts, events, seed, memory_limit=memory_limit, on_stage=lambda s: console.print(f"[dim]{s}…[/]"))
    out_console.print(results_table(result))
    out_console.print(f"results: {write_results(result, workdir / 'linking.json')}")


@bench_app.command("gateway")
def bench_gateway(
    workdir: Annotated[Path, typer.Option(help="Where configs, logs and results go.")] = Path("bench-out/gateway"),
    rate: Annotated[float, typer.Option(help="Offered rate of the open-loop latency legs (requests/s).")] = 500.0,
    low_rate: Annotated[float, typer.Option(help="Also the latency legs at this lighter rate (0: not).")] = 100.0,
    duration: Annotated[float, typer.Option(help="Seconds of each open-loop latency leg.")] = 10.0,
    concurrency: Annotated[int, typer.Option(help="Requests in flight in the closed-loop throughput legs.")] = 32,
    throughput_duration: Annotated[float, typer.Option(help="Seconds of each throughput leg.")] = 10.0,
    litellm: Annotated[bool, typer.Option("--litellm/--no-litellm", help="Measure the LiteLLM proxy as the reference.")] = True,
    litellm_plugin: Annotated[bool, typer.Option("--litellm-plugin/--no-litellm-plugin", help="Also LiteLLM with distillguard's plugin in it.")] = True,
    hydra: Annotated[bool, typer.Option("--hydra/--no-hydra", help="Replay the hydra scenario: time to first throttle.")] = True,
    reseller: Annotated[bool, typer.Option("--reseller/--no-reseller", help="Replay hydra_mixed_reseller with and without online end-user judging.")] = True,
    hydra_scale: Annotated[float, typer.Option(help="Scale of the replayed scenarios (hydra, hydra_mixed_reseller).")] = 0.25,
    hydra_days: Annotated[float, typer.Option(help="Scenario days replayed.")] = 1.0,
    hydra_replay: Annotated[float, typer.Option(help="Wall seconds the replayed scenario is compressed into.")] = 120.0,
    seed: Annotated[int, typer.Option(help="Simulator seed of the replayed scenarios.")] = 1000,
    small: Annotated[bool, typer.Option("--small", help="Smoke run: 50 req/s for 2 s, tiny replay.")] = False,
) -> None:
    """Gateway added latency (p50/p99 at a fixed rate) and throughput per core, beside LiteLLM; hydra time to first throttle;
    campaigns among a reseller's end users refused with and without online end-user judging."""
    from distillguard.bench.gateway import run_gateway_bench

    try:
        results = run_gateway_bench(
            workdir, rate=rate, low_rate=low_rate or None, duration_s=duration, concurrency=concurrency, throughput_s=throughput_duration,
            litellm=litellm, litellm_plugin=litellm_plugin, hydra=hydra, reseller=reseller, small=small, seed=seed, hydra_scale=hydra_scale, hydra_days=hydra_days,
            hydra_replay_s=hydra_replay, on_stage=lambda s: console.print(f"[dim]{s}…[/]"),
        )  # fmt: skip
    except (RuntimeError, DistillguardError) as exc:
        _fail(exc if isinstance(exc, DistillguardError) else DistillguardError(str(exc)))
    from distillguard.bench.gateway import markdown_table as gateway_table

    out_console.print(gateway_table(results), soft_wrap=True)
    out_console.print(f"results: {workdir / 'results.json'}, {workdir / 'results.md'}, {workdir / 'latency.png'}")


def run() -> None:  # pragma: no cover - console entry with a last-resort guard
    try:
        app()
    except Exception as exc:  # an internal error: say so plainly, keep the traceback for bug reports
        console.print(f"[bold red]internal error:[/] {exc!r} (please report this with the traceback below)")
        console.print_exception()
        sys.exit(EXIT_INTERNAL)
