"""``vitprune deploy``: a bundle to a device over SSH, built and measured there, results brought back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import command, console, print_next


@command("deploy", no_args_is_help=True)
def deploy(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder from 'vitprune bundle'.")],
    host: Annotated[str, typer.Option("--host", help="user@host (or a Host of ~/.ssh/config).")],
    remote_dir: Annotated[
        str, typer.Option("--remote-dir", help="Folder on the host, relative to its home or absolute.")
    ] = "vitprune-bundles",
    port: Annotated[Optional[int], typer.Option("--port", min=1, max=65535, help="SSH port.")] = None,
    ssh_option: Annotated[
        Optional[list[str]],
        typer.Option(
            "--ssh-option", help="Extra SSH option, repeatable, e.g. --ssh-option=-i --ssh-option=~/.ssh/jetson."
        ),
    ] = None,
    build_arg: Annotated[
        Optional[list[str]],
        typer.Option("--build-arg", help="Argument for build.sh, repeatable (--build-arg=--trtexec)."),
    ] = None,
    batch: Annotated[
        Optional[list[int]],
        typer.Option("--batch", "-b", help="Batch to measure, repeatable [default: the profile's]."),
    ] = None,
    copy: Annotated[Optional[str], typer.Option("--copy", help="rsync | scp [default: rsync when installed].")] = None,
    results: Annotated[Path, typer.Option("--results", help="Local results folder to bring results into.")] = Path(
        "results"
    ),
    plan_speedup: Annotated[
        Optional[float],
        typer.Option("--plan-speedup", help="Then run plan.sh: keep counts X times as fast (bundle made with --plan)."),
    ] = None,
    plan_latency_ms: Annotated[
        Optional[float],
        typer.Option("--plan-latency-ms", help="Then run plan.sh: keep counts within MS milliseconds."),
    ] = None,
) -> None:
    """Copy BUNDLE to --host (rsync, else scp), run build.sh and profile.sh there with their output streamed,
    bring results/ back into the local results folder and print the comparison table. With --plan-speedup or
    --plan-latency-ms, plan.sh then plans the keep counts from the device's own latency; the schedule comes back
    under results/<device>/plans/.

    Example: vitprune deploy bundles/orin --host nvidia@orin.local --batch 1 --batch 8
    """
    from rich.markup import escape

    from ..errors import VitPruneError
    from ..measure.compare import render_table
    from ..measure.deploy import DeployRequest
    from ..measure.deploy import deploy as run_deploy

    request = DeployRequest(
        bundle=bundle,
        host=host,
        remote_dir=remote_dir,
        port=port,
        ssh_options=list(ssh_option or []),
        build_args=list(build_arg or []),
        batches=list(batch or []),
        results_root=results,
        copy_tool=copy,
        plan_speedup=plan_speedup,
        plan_latency_ms=plan_latency_ms,
    )
    outcome = run_deploy(request, say=lambda line: console.print(line, highlight=False, markup=False))
    for path in outcome.fetched:
        console.print(f"[green]fetched[/] {escape(str(path))}", highlight=False)
        if path.parent.name == "plans":
            console.print(f"schedule {path}: vitprune export … --schedule {path}", highlight=False, markup=False)
    if outcome.comparison is not None:
        console.print(render_table(outcome.comparison))
    if outcome.error:
        kept = f"; kept the {len(outcome.fetched)} result file(s) it wrote" if outcome.fetched else ""
        raise VitPruneError(outcome.error + kept)
    print_next(["compare", results])
