"""The `longtail` command line: the user interface of the data engine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from longtail.config import ConfigError
from longtail.registry import SERVICES

from fleet_sim import __main__ as fleet_sim_main
from longtail_cli import labels as label_cli
from longtail_cli import studio as studio_cli
from longtail_cli import tasks as tasks_cli
from longtail_cli import train as trainer_cli
from longtail_cli import trigger_language as triggers_cli
from longtail_cli import triggers as catalog_cli

app = typer.Typer(help="longtail: a data engine for fleet learning.", no_args_is_help=True, pretty_exceptions_enable=False)
infra_app = typer.Typer(help="Local infrastructure: Kafka, S3, PostgreSQL, Triton on loopback.", no_args_is_help=True)
protos_app = typer.Typer(help="Protobuf contracts: regenerate and check the Python code.", no_args_is_help=True)
k8s_app = typer.Typer(help="A local Kubernetes control plane on loopback (etcd, API server, controllers, kwok's simulated nodes) to try the charts.", no_args_is_help=True)
app.add_typer(infra_app, name="infra")
app.add_typer(protos_app, name="protos")
app.add_typer(k8s_app, name="k8s")
app.add_typer(triggers_cli.app, name="triggers")
catalog_cli.register(triggers_cli.app)
app.add_typer(label_cli.suites_app, name="suites")
app.add_typer(label_cli.datasets_app, name="datasets")
app.command("label")(label_cli.label)
app.add_typer(tasks_cli.app, name="tasks")
app.add_typer(trainer_cli.app)  # `longtail train`, `longtail runs`, `longtail models ...`
app.add_typer(studio_cli.app, name="studio")

console = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _components(triton: bool, only: str | None, prometheus: bool = False, kafka_brokers: int = 1, label_studio: bool = False) -> list[str]:
    from longtail_dev.infra import DEFAULT, KAFKA_CLUSTER

    if kafka_brokers not in (1, len(KAFKA_CLUSTER)):
        fail(f"--kafka-brokers is 1 (the default: one broker) or {len(KAFKA_CLUSTER)} (a replicated cluster), not {kafka_brokers}")
    if only:
        return [n.strip() for n in only.split(",") if n.strip()]
    kafka = list(KAFKA_CLUSTER) if kafka_brokers > 1 else ["kafka"]
    return [*kafka, *(n for n in DEFAULT if n != "kafka"), *(["triton"] if triton else []), *(["prometheus"] if prometheus else []), *(["label-studio"] if label_studio else [])]


@infra_app.command("up")
def infra_up(
    triton: bool = typer.Option(False, "--triton", help="Also start NVIDIA Triton (PyTriton, CPU)."),
    prometheus: bool = typer.Option(False, "--prometheus", help="Also start Prometheus (Debian's package), scraping every service started locally."),
    kafka_brokers: int = typer.Option(1, "--kafka-brokers", help="1: one broker (the demo's); 3: a replicated KRaft cluster (topics with replication factor 3, min.insync.replicas 2)."),
    label_studio: bool = typer.Option(False, "--label-studio", help="Also start Label Studio (pinned, in its own virtualenv) with an admin account and API token (docs/label-studio.md)."),
    only: str = typer.Option(None, help="Comma-separated subset: kafka (or kafka-1,kafka-2,kafka-3),s3,postgres,triton,prometheus,label-studio."),
) -> None:
    """Install (once, cached in ~/.cache/longtail) and start the local infrastructure; idempotent."""
    from longtail_dev.infra import InfraError, Launcher

    names = _components(triton, only, prometheus, kafka_brokers, label_studio)
    launcher = Launcher(say=lambda m: console.print(f"[cyan]infra[/] {m}"))
    running = {s.name for s in launcher.status() if s.running}
    wanted_kafka = {n for n in names if n.startswith("kafka")}
    other_kafka = {n for n in running if n.startswith("kafka")} - wanted_kafka
    if wanted_kafka and other_kafka and ("kafka" in wanted_kafka) != ("kafka" in other_kafka):
        fail(f"{', '.join(sorted(other_kafka))} already running: one Kafka at a time (the services get one KAFKA_BOOTSTRAP_SERVERS); `longtail infra down --only {','.join(sorted(other_kafka))}` first")
    try:
        env = launcher.up(names)
    except InfraError as exc:
        fail(str(exc))
    console.print('[green]infrastructure is up.[/] Point services at it with:  eval "$(longtail infra env)"')
    for key, value in sorted(env.items()):
        console.print(f"  {key}={value}")


@infra_app.command("down")
def infra_down(only: str = typer.Option(None, help="Comma-separated subset to stop.")) -> None:
    """Stop exactly the processes `infra up` started."""
    from longtail_dev.infra import Launcher

    names = [n.strip() for n in only.split(",")] if only else None
    stopped = Launcher(say=lambda m: console.print(f"[cyan]infra[/] {m}")).down(names)
    if not stopped:
        console.print("nothing was running")


@infra_app.command("status")
def infra_status() -> None:
    """What is running, where it listens, whether it answers. Exits 1 if something recorded is down."""
    from longtail_dev.infra import Launcher

    table = Table("component", "pid", "running", "ready", "address", "log")
    broken = False
    for row in Launcher().status():
        table.add_row(row.name, str(row.pid or "-"), "yes" if row.running else "no", "yes" if row.ready else "no", row.address, row.log)
        broken |= bool(row.pid) and not row.ready
    Console(width=max(Console().width, 160)).print(table)
    if broken:
        raise typer.Exit(1)


@infra_app.command("env")
def infra_env() -> None:
    """Print `export` lines for the running infrastructure (eval "$(longtail infra env)")."""
    from longtail_dev.infra import Launcher

    for key, value in sorted(Launcher().env().items()):
        print(f"export {key}={value}")


def _k8s_launcher():
    from longtail_dev.infra import Launcher, k8s

    return Launcher(say=lambda m: console.print(f"[cyan]k8s[/] {m}"), components=k8s.COMPONENTS, state_name="k8s")


@k8s_app.command("up")
def k8s_up() -> None:
    """Build (once: 12-15 min on 2 cores, cached) and start etcd, kube-apiserver, the controller
    manager, the scheduler and kwok (3 simulated nodes) on 127.0.0.1; idempotent. Pods on the
    simulated nodes are marked Running and Ready, but no container runs."""
    from longtail_dev.infra import InfraError, k8s

    try:
        _k8s_launcher().up()
        info = k8s.summary()
    except InfraError as exc:
        fail(str(exc))
    console.print(f"[green]Kubernetes {info.version} is up[/] with nodes {', '.join(info.nodes)} (simulated by kwok: containers do not run).")
    console.print(f'  export KUBECONFIG={info.kubeconfig}    # or: eval "$(longtail k8s env)"')


@k8s_app.command("status")
def k8s_status() -> None:
    """What runs, whether it answers, the server version and the nodes. Exits 1 if something recorded is down."""
    from longtail_dev.infra import k8s

    table = Table("component", "pid", "running", "ready", "address", "log")
    broken = False
    rows = _k8s_launcher().status()
    for row in rows:
        table.add_row(row.name, str(row.pid or "-"), "yes" if row.running else "no", "yes" if row.ready else "no", row.address, row.log)
        broken |= bool(row.pid) and not row.ready
    Console(width=max(Console().width, 160)).print(table)
    if any(r.ready for r in rows if r.name == "kube-apiserver"):
        info = k8s.summary()
        console.print(f"Kubernetes {info.version}; nodes: " + ", ".join(f"{n} Ready={s}" for n, s in info.nodes.items()) + f"; KUBECONFIG={info.kubeconfig}")
    if broken:
        raise typer.Exit(1)


@k8s_app.command("down")
def k8s_down() -> None:
    """Stop exactly the processes `k8s up` started (the API server before etcd). The data stays in
    the state directory: `k8s up` again finds the same objects."""
    if not _k8s_launcher().down():
        console.print("nothing was running")


@k8s_app.command("env")
def k8s_env() -> None:
    """Print `export KUBECONFIG=...` for the running control plane (eval "$(longtail k8s env)")."""
    for key, value in sorted(_k8s_launcher().env().items()):
        print(f"export {key}={value}")


@protos_app.command("generate")
def protos_generate() -> None:
    """Regenerate services/longtail/**/v1/*_pb2*.py from protos/."""
    from longtail_dev import protogen

    changed = protogen.generate()
    console.print("\n".join(changed) if changed else "generated code was already up to date")


@protos_app.command("check")
def protos_check() -> None:
    """Exit 1 if the committed generated code differs from what protos/ generates."""
    from longtail_dev import protogen

    problems = protogen.diff()
    if problems:
        fail("generated code is out of date; run `longtail protos generate`:\n  " + "\n  ".join(problems))
    console.print("generated code is up to date")


@app.command("serve")
def serve(service: str = typer.Argument(..., help=f"one of: {', '.join(SERVICES)}")) -> None:
    """Run one service in the foreground (configured from the environment; see `longtail infra env`)."""
    if service not in SERVICES:
        fail(f"unknown service {service!r}; choose from {', '.join(SERVICES)}")
    # A fresh interpreter (`python -m <service>`, same PID): the service loads only its own
    # modules, and what must precede grpc's import (the gateway's GRPC_EXPERIMENTS) takes effect;
    # this CLI has imported grpc already.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", SERVICES[service].package])


fleet_app = typer.Typer(help="Fleet administration.", no_args_is_help=True)
app.add_typer(fleet_app, name="fleet")


@fleet_app.command("token")
def fleet_token(
    vehicle_id: str,
    ttl_hours: float = typer.Option(24.0, help="Validity in hours."),
) -> None:
    """Issue a vehicle token signed with FLEET_TOKEN_SECRET."""
    from longtail.auth import FleetAuthSettings, issue_token
    from longtail.config import load

    print(issue_token(vehicle_id, load(FleetAuthSettings).token_secret, ttl_hours * 3600))


fleet_ca_app = typer.Typer(help="A development certificate authority for cars and services (mutual TLS).", no_args_is_help=True)
fleet_app.add_typer(fleet_ca_app, name="ca")


def _pki_dir(directory: Path | None) -> Path:
    from longtail_dev.dev_tls import default_directory

    return directory or default_directory()


@fleet_ca_app.command("init")
def fleet_ca_init(
    directory: Path | None = typer.Option(None, "--dir", help="Where the CA lives (default $LONGTAIL_PKI_DIR or <state>/pki)."),
    force: bool = typer.Option(False, help="Replace an existing CA (every certificate it issued stops being trusted)."),
) -> None:
    """Create the CA: ca.pem (give it to the gateway as GRPC_TLS_CA) and ca-key.pem (keep it private)."""
    from longtail.pki import init_ca

    try:
        issued = init_ca(_pki_dir(directory), force=force)
    except FileExistsError as exc:
        raise typer.BadParameter(str(exc)) from None
    print(f"CA certificate {issued.cert}\nCA key {issued.key}")


@fleet_app.command("cert")
def fleet_cert(
    vehicle_id: str,
    directory: Path | None = typer.Option(None, "--dir", help="The CA's directory (default $LONGTAIL_PKI_DIR or <state>/pki)."),
    days: float = typer.Option(365, help="Validity in days."),
) -> None:
    """Issue a car's client certificate (its vehicle id in the CN and the URI SAN urn:longtail:vehicle:<id>)."""
    from longtail.pki import issue

    issued = issue(_pki_dir(directory), vehicle_id, vehicle=True, days=days)
    print(f"certificate {issued.cert}\nkey {issued.key}")


@fleet_app.command("server-cert")
def fleet_server_cert(
    name: str,
    directory: Path | None = typer.Option(None, "--dir", help="The CA's directory (default $LONGTAIL_PKI_DIR or <state>/pki)."),
    dns: list[str] = typer.Option(["localhost"], help="DNS names (repeat the option)."),
    ip: list[str] = typer.Option(["127.0.0.1"], help="IP addresses (repeat the option)."),
    days: float = typer.Option(365, help="Validity in days."),
) -> None:
    """Issue a service's certificate (GRPC_TLS_CERT / GRPC_TLS_KEY) for its DNS names and addresses."""
    from longtail.pki import issue

    issued = issue(_pki_dir(directory), name, dns=tuple(dns), ips=tuple(ip), days=days)
    print(f"certificate {issued.cert}\nkey {issued.key}")


@fleet_app.command("tls-env")
def fleet_tls_env(
    directory: Path | None = typer.Option(None, "--dir", help="The development CA's directory (default $LONGTAIL_PKI_DIR or <state>/pki)."),
    client_auth: str = typer.Option("optional", help="GRPC_TLS_CLIENT_AUTH for the services: none, optional or require."),
) -> None:
    """Print `export` lines that run services (GRPC_TLS_*) and the `longtail` command (LONGTAIL_TLS_*)
    on this machine with the development CA; the CA and certificates are made on first use
    (eval "$(longtail fleet tls-env)")."""
    import shlex

    from longtail_dev.dev_tls import dev_tls

    if client_auth not in ("none", "optional", "require"):
        raise typer.BadParameter(f"{client_auth!r}: none, optional or require")
    tls = dev_tls(_pki_dir(directory))
    env = {"LONGTAIL_PKI_DIR": str(tls.directory), **tls.service_env(client_auth), **tls.operator_env()}
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")


@fleet_app.command("revoke")
def fleet_revoke(
    vehicle_id: str = typer.Argument("", help="The car to revoke (its open session is closed within seconds)."),
    serial: str = typer.Option("", help="Revoke one certificate instead, by its serial number (hex)."),
    file: Path | None = typer.Option(None, help="The gateway's deny list (default $GATEWAY_REVOKED_FILE)."),
    reason: str = typer.Option("", help="Kept as a comment beside the entry."),
) -> None:
    """Add a car or a certificate to the gateway's deny list (GATEWAY_REVOKED_FILE; reloaded without a restart)."""
    target = file or (Path(os.environ["GATEWAY_REVOKED_FILE"]) if os.environ.get("GATEWAY_REVOKED_FILE") else None)
    if target is None:
        raise typer.BadParameter("no deny list: pass --file or set GATEWAY_REVOKED_FILE")
    if bool(vehicle_id) == bool(serial):
        raise typer.BadParameter("give a vehicle id or --serial, one of them")
    if serial:
        int(serial, 16)  # a ValueError names a bad serial before anything is written
    entry = f"serial:{serial.lower()}" if serial else vehicle_id
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as f:
        f.write(entry + (f"  # {reason}" if reason else "") + "\n")
    print(f"revoked {entry} in {target}")


@app.command("token")
def token(
    name: str,
    role: list[str] = typer.Option(["operator"], "--role", help="operator, labeller, reviewer or service (repeat for several); docs/security.md."),
    ttl_hours: float = typer.Option(8.0, help="Validity in hours."),
) -> None:
    """Issue a token for a person or a service, signed with OPERATOR_TOKEN_SECRET (export it as LONGTAIL_TOKEN)."""
    from longtail.access import ROLES
    from longtail.auth import OPERATOR_AUDIENCE, OperatorAuthSettings, issue_token
    from longtail.config import load

    unknown = sorted(set(role) - set(ROLES))
    if unknown:
        raise typer.BadParameter(f"unknown role(s) {unknown}: use {', '.join(ROLES)}", param_hint="--role")
    print(issue_token(name, load(OperatorAuthSettings).token_secret, ttl_hours * 3600, audience=OPERATOR_AUDIENCE, roles=tuple(role)))


@app.command("operator-token")
def operator_token(name: str, ttl_hours: float = typer.Option(8.0, help="Validity in hours.")) -> None:
    """Issue an operator token (the same as `longtail token NAME --role operator`)."""
    token(name, ["operator"], ttl_hours)


app.command("sim")(fleet_sim_main.sim)


@app.command("demo")
def demo(
    triton: bool = typer.Option(True, help="Start Triton too (inference pre-labels need it)."),
    prometheus: bool = typer.Option(True, help="Start a local Prometheus scraping every service (needs Debian's prometheus package)."),
    keep_running: bool = typer.Option(False, "--keep-running", help="Leave the services and the infrastructure up afterwards."),
    label_studio: bool = typer.Option(True, "--label-studio/--no-label-studio", help="With --keep-running: also start Label Studio and its bridge, and print a labeller's login (docs/label-studio.md)."),
    cars: int = typer.Option(80, help="Simulated cars."),
    budget: int = typer.Option(40, help="Fleet labels every arm adds in the first iteration (the same for every arm)."),
    growth: float = typer.Option(2.0, help="Growth of the per-iteration label budget (1 = constant): the baselines reach their cap in a few runs."),
    target: float = typer.Option(0.90, help="Pass rate on the case's suite that ends an arm's iterations."),
    tolerance: float = typer.Option(0.02, help="... provided no other suite's pass rate fell more than this below the baseline's."),
    cap_factor: float = typer.Option(10.0, "--cap-factor", help="Label cap of the baselines: this many times the triggered arm's labels to target."),
    max_iterations: int = typer.Option(8, "--max-iterations", help="Iterations at most (drive, label, train, gate) per arm."),
    duration: float = typer.Option(60.0, help="Simulated seconds the fleet drives per iteration."),
    fps: float = typer.Option(5.0, help="Frames per second each simulated car renders (0.5-30)."),
    suite_cases: int = typer.Option(100, "--suite-cases", help="Held-out cases per unit-test suite."),
    epochs: int = typer.Option(6, help="Training epochs per run (12 teaches the attribute cases from fewer positives; docs/demo.md)."),
    seed_examples: int = typer.Option(20, "--seed-examples", help="The seed set's positives (and four times as many fleet-like negatives)."),
    per_car_uploads: int = typer.Option(2, "--per-car-uploads", help="Uploads per car, trigger and drive of the operator's triggers."),
    random_per_car: int = typer.Option(15, "--random-per-car", help="Uploads per car and drive of the random pool (the baselines' source)."),
    shadow_s: float = typer.Option(10.0, "--shadow-s", help="Simulated seconds the fleet runs an accepted candidate in shadow mode before promotion."),
    seeds: int = typer.Option(1, help="Repeat the experiment with this many world/fleet seeds (0, 1, ...) and report mean and spread."),
    seed: int = typer.Option(0, help="The first world/fleet seed."),
    cases: str = typer.Option(
        "occluded,handheld,temporary",
        help="Long-tail cases of the stop-sign task worked at once, comma-separated: occluded, handheld, temporary, on_gate, except_right_turn (each its own suite, seed set, detector and trigger; one fleet and label budget).",
    ),
    explore: float = typer.Option(0.2, help="Share of the triggered arm's label budget spread over its triggers round-robin, whatever their measured yield (0: all by yield; 1: even split)."),
    new_task: str = typer.Option(
        "", "--new-task", help="Declare this task in the middle of the run (caution_lights) and report its latency from declaration to certified; the world gets its phenomenon (parked vehicles, some with caution lights)."
    ),
    new_task_at: int = typer.Option(2, "--new-task-at", help="... at the start of this iteration."),
    out: str = typer.Option("out/demo", help="Report directory (report.md, summary.json, results.json, PNG plots)."),
    smoke: bool = typer.Option(False, "--smoke", help="Only the infrastructure smoke pass (one batch, one snapshot, one inference)."),
) -> None:
    """Run the data engine as a fair experiment on local infrastructure: the triggered arm (the data
    engine) against random sampling, uncertainty sampling and the seed set alone, each from the
    same start, until it reaches --target or its label cap; writes a report to --out. `--smoke`
    runs only the infrastructure smoke pass."""
    if smoke:
        _smoke(triton, keep_running)
        return
    from pathlib import Path

    from demo import loop, report
    from longtail_dev.infra import InfraError

    config = loop.DemoConfig(
        cars=cars,
        budget=budget,
        growth=growth,
        target=target,
        tolerance=tolerance,
        cap_factor=cap_factor,
        max_iterations=max_iterations,
        duration_s=duration,
        fps=fps,
        suite_cases=suite_cases,
        epochs=epochs,
        seed_examples=seed_examples,
        per_car_uploads=per_car_uploads,
        random_per_car=random_per_car,
        shadow_s=shadow_s,
        seeds=list(range(seed, seed + max(seeds, 0))),
        out=Path(out),
        cases=[c.strip() for c in cases.split(",") if c.strip()],
        new_task=new_task.strip(),
        new_task_at=new_task_at,
        explore=explore,
        triton=triton,
        prometheus=prometheus,
        keep_running=keep_running,
    )
    try:
        config.validate()
    except ValueError as exc:
        fail(str(exc))
    import signal

    # SIGTERM (kill, a CI timeout) unwinds like Ctrl-C: the run retires its triggers and stops what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result, path, engine = loop.run(config, say=lambda m: console.print(m))
    except InfraError as exc:
        fail(str(exc))
    Console().print(report.table(result))
    console.print(f"report: {path}")
    if keep_running:
        # The services die with this process (PR_SET_PDEATHSIG), so it stays in the foreground.
        for name, proc in engine.processes.items():
            console.print(f"  {name}: {proc.address}")
        console.print(f"  FLEET_TOKEN_SECRET={engine.stack.fleet_secret}")
        console.print("  for `longtail` commands (tokens minted from the secret; TLS):")
        console.print("  " + "  ".join(f"{k}={v}" for k, v in engine.stack.cli_env().items()))
        if os.environ.get("PROMETHEUS_URL"):
            console.print(f'  Prometheus: {os.environ["PROMETHEUS_URL"]} (queries of charts/*/dashboards/*.json work with namespace="local")')
        if label_studio:
            try:
                studio = engine.stack.start_label_studio()
            except (InfraError, RuntimeError) as exc:
                console.print(f"[yellow]Label Studio not started:[/] {exc}")
            else:
                console.print(f"  Label Studio: {studio['url']}  login {studio['email']} / {studio['password']}  (projects {studio['projects']}: label the run's uploads; they go to the label store and into the next dataset version)")
        console.print("[bold]services are up; Ctrl-C stops them (the infrastructure stays up: `longtail infra down`)[/]")
        try:
            import time

            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            engine.stop()  # the services; the infrastructure stays (keep_running)


def _smoke(triton: bool, keep_running: bool) -> None:
    from longtail_dev import smoke
    from longtail_dev.infra import InfraError, Launcher

    launcher = Launcher(say=lambda m: console.print(f"[cyan]infra[/] {m}"))
    try:
        env = launcher.up(_components(triton, None))
    except InfraError as exc:
        fail(str(exc))
    os.environ.update(env)
    try:
        report = smoke.run(with_triton=triton, say=lambda m: console.print(f"[magenta]demo[/] {m}"))
    finally:
        if not keep_running:
            launcher.down()
    table = Table("step", "result", title="longtail demo --smoke")
    for step, result in report:
        table.add_row(step, result)
    Console().print(table)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        console.print(f"[bold red]configuration error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
