"""``aq cluster …``: a whole deployment on simulated hosts of this machine (docs/scaling.md)."""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from adventure_quest.cluster.hosts import ClusterError, Network, check_prerequisites
from adventure_quest.cluster.layout import Layout, read_layout


def bundled_layouts() -> list[str]:
    folder = resources.files("adventure_quest.cluster") / "layouts"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_layout(spec: str) -> Layout:
    """A layout from a file, or one of the bundled ones by name (``small``, ``cluster3``…)."""
    path = Path(spec)
    if not path.exists() and spec in bundled_layouts():
        with resources.as_file(
            resources.files("adventure_quest.cluster") / "layouts" / f"{spec}.toml"
        ) as bundled:
            return read_layout(bundled)
    if not path.exists():
        raise ClusterError(
            "invalid_layout",
            f"no layout file {spec!r}, and no bundled layout of that name"
            f" (bundled: {', '.join(bundled_layouts())})",
        )
    return read_layout(path)


def _fail(error: ClusterError) -> typer.Exit:
    typer.echo(f"error [{error.code}]: {error}", err=True)
    return typer.Exit(2)


def register(app: typer.Typer) -> None:
    cluster_app = typer.Typer(
        help="A deployment across simulated hosts (network namespaces, cgroup quotas)."
    )
    app.add_typer(cluster_app, name="cluster")
    register_drill(cluster_app)

    @cluster_app.command("up")
    def up(
        layout: Annotated[
            str, typer.Argument(help="A layout TOML file, or a bundled layout's name.")
        ] = "small",
        seconds: Annotated[
            float, typer.Option("--for", min=0, help="Stop after this long; 0: at Ctrl-C.")
        ] = 0.0,
        keep: Annotated[
            bool, typer.Option("--keep-logs", help="Keep the servers' directories and logs.")
        ] = False,
    ) -> None:
        """Build the layout's hosts, run the deployment on them, tear everything down at exit."""
        from adventure_quest.cluster.deploy import Cluster

        try:
            spec = load_layout(layout)
            check_prerequisites()
            cluster = Cluster(spec, progress=lambda line: typer.echo(line, err=True))
            with cluster:
                typer.echo(json.dumps({"api": cluster.endpoints.apis, "env": cluster.env()}))
                hosts = cluster.network.hosts.values()
                listed = ", ".join(f"{h.name}={h.address}" for h in hosts)
                typer.echo(f"hosts: {listed}; workdir {cluster.workdir}; Ctrl-C stops", err=True)
                deadline = time.monotonic() + seconds if seconds else float("inf")
                while time.monotonic() < deadline:
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                if keep:
                    cluster.stop(keep_workdir=True)
                    typer.echo(f"logs kept in {cluster.workdir}", err=True)
        except ClusterError as error:
            raise _fail(error) from None
        except KeyboardInterrupt:
            typer.echo("stopped; hosts removed", err=True)

    @cluster_app.command("check")
    def check(
        layout: Annotated[str, typer.Argument(help="A layout to check too.")] = "",
    ) -> None:
        """Say whether this machine can build hosts (root, ip, tc, cgroups) and check a layout."""
        try:
            check_prerequisites()
            typer.echo("ok: root, ip, tc, bridge and the cgroup v1 controllers are here")
            if layout:
                spec = load_layout(layout)
                typer.echo(
                    f"ok: layout {spec.name}: {len(spec.hosts)} hosts,"
                    f" {spec.cpu_total:.2f} cores of quota"
                )
        except ClusterError as error:
            raise _fail(error) from None

    @cluster_app.command("clean")
    def clean(
        name: Annotated[str, typer.Argument(help="The layout's name (its `name =`).")] = "aqc",
    ) -> None:
        """Remove the hosts a killed `aq cluster` left behind (namespaces, cgroups, processes)."""
        try:
            check_prerequisites()
        except ClusterError as error:
            raise _fail(error) from None
        removed = Network.remove_leftovers(name)
        typer.echo("\n".join(removed) if removed else f"nothing of {name!r} was left")

    @cluster_app.command("layouts")
    def layouts() -> None:
        """The bundled layouts."""
        for name in bundled_layouts():
            typer.echo(name)


def register_drill(cluster_app: typer.Typer) -> None:
    @cluster_app.command("drill")
    def drill(
        layout: Annotated[str, typer.Argument(help="A layout file or bundled name.")] = "drill",
        seconds: Annotated[float, typer.Option(min=1, help="How long the faults go on.")] = 60,
        players: Annotated[int, typer.Option(min=1, max=200)] = 8,
        seed: Annotated[int, typer.Option(help="Victims and timing.")] = 1,
        lease: Annotated[float, typer.Option(help="The workers' partition lease, seconds.")] = 3.0,
        as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
    ) -> None:
        """Play while hosts are cut off, processes killed, a worker frozen; check nothing was
        lost or doubled and the read models equal a rebuild (exit 1 if not)."""
        from adventure_quest.bench import faults
        from adventure_quest.cluster.deploy import Cluster

        def progress(line: str) -> None:
            typer.echo(line, err=True)

        try:
            spec = load_layout(layout)
            check_prerequisites()
            lease_env = {"AQ_LEASE_TTL": str(lease)}
            with Cluster(spec, progress=progress, extra_env=lease_env) as cluster:
                report = faults.drill(
                    cluster,
                    seconds=seconds,
                    players=players,
                    seed=seed,
                    lease_s=lease,
                    progress=progress,
                )
        except ClusterError as error:
            raise _fail(error) from None
        typer.echo(json.dumps(faults.summary(report)) if as_json else report.table())
        if not report.passed:
            raise typer.Exit(1)
